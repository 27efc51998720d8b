"""The admin service's part for an app's prompts (``AdminService.prompts``): the same
rules for ``tongdai prompt`` and the admin API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tongdai.media.prompts import (
    BUILTIN,
    NoPrompt,
    Prompt,
    PromptError,
    PromptLibrary,
    builtin_prompt,
)
from tongdai.store.errors import Invalid, NotFound

if TYPE_CHECKING:
    from tongdai.admin.service import AdminService


def prompt_view(app_id: str, prompt: Prompt, source: str) -> dict[str, Any]:
    return {"app_id": app_id, "name": prompt.name, "seconds": round(prompt.seconds, 2),
            "source": source}


class PromptAdmin:
    def __init__(self, svc: AdminService) -> None:
        self.svc = svc
        self.library = PromptLibrary(svc.settings.prompts_dir)

    async def _app(self, app_id: str) -> str:
        await self.svc.get_app(app_id)  # exists, and the principal may see it
        return app_id

    async def add(self, app_id: str, name: str, *, file: Path | None = None,
                  text: str | None = None, lang: str = "vi") -> dict[str, Any]:
        """Add or replace a prompt from an audio file (converted once) or a text spoken
        by espeak-ng."""
        await self._app(app_id)
        if (file is None) == (text is None):
            raise Invalid("give either an audio FILE or --text to speak, not both")
        try:
            if file is not None:
                prompt = await asyncio.to_thread(self.library.add, app_id, name, file)
                source = "file"
            else:
                assert text is not None
                prompt = await asyncio.to_thread(self.library.add_text, app_id, name, text,
                                                 lang)
                source = f"text ({lang})"
        except PromptError as exc:
            raise Invalid(str(exc)) from None
        await self.svc.audit("prompt.added", app_id, name, source=source)
        return prompt_view(app_id, prompt, source)

    async def list(self, app_id: str) -> list[dict[str, Any]]:
        await self._app(app_id)
        own = set(self.library.own(app_id))
        rows = []
        for name in self.library.names(app_id):
            prompt = self.library.get(app_id, name) if name in own else builtin_prompt(name)
            if prompt is None:
                continue  # removed meanwhile
            if name in own:
                source = "app (replaces the built-in)" if name in BUILTIN else "app"
            else:
                source = "built-in"
            rows.append(prompt_view(app_id, prompt, source))
        return rows

    async def remove(self, app_id: str, name: str) -> dict[str, Any]:
        await self._app(app_id)
        try:
            self.library.remove(app_id, name)
        except NoPrompt as exc:
            raise NotFound(str(exc)) from None
        except PromptError as exc:
            raise Invalid(str(exc)) from None
        await self.svc.audit("prompt.removed", app_id, name)
        return {"removed": name, "app_id": app_id}
