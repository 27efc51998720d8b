"""Response and request shapes, for the OpenAPI document (handlers build plain dicts)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Credentials(BaseModel):
    """The device that acts: its SIP user name and SIP password."""

    sipUser: str = Field(description="The device (SIP account) name.", examples=["thutran"])
    sipPassword: str = Field(description="The device's SIP password.", examples=["s3cret"])


class AuthToken(BaseModel):
    value: str = Field(description="The token for the websocket; shown once, store it safely.")
    expire: int = Field(description="When the token expires, unix seconds.")


class CallStarted(BaseModel):
    call_id: str = Field(
        description="Identifies the call in websocket events and (once it ends) in histories."
    )


class Party(BaseModel):
    model_config = ConfigDict(extra="allow")

    number: str = Field(examples=["01693608879"])
    type: Literal["user", "realnumber"] = Field(
        description="`user`: a device of this app; `realnumber`: an outside number."
    )
    username: str | None = Field(
        None, description="Only for type=user: the user's name.", examples=["thutran"]
    )


class CallRecord(BaseModel):
    """One call, exactly as the seed API describes it (field names and order)."""

    model_config = ConfigDict(populate_by_name=True)

    caller: Party
    callee: Party
    klass: Literal["one_one", "trunking"] = Field(
        alias="class",
        description="`one_one`: internal call; `trunking`: into or out of the system.",
    )
    did_number: str | None = Field(
        description="The company DID called; null for internal and outgoing calls.",
        examples=["02873019555"],
    )
    direction: Literal["from_ab", "to_ab"] = Field(
        description="`from_ab`: outgoing (also internal and click-to-call); `to_ab`: incoming."
    )
    status_detail: Literal["SUCCESS", "BUSY", "CANCELLED", "IVR", "ERROR"] = Field(
        description=(
            "`SUCCESS` answered; `BUSY` callee busy; `CANCELLED` an outgoing call hung up "
            "before the answer; `IVR` reached the far end but nobody picked up (also an "
            "incoming call the caller abandoned); `ERROR` anything else."
        )
    )
    duration_seconds: int = Field(description="Whole call, from start to hangup.")
    unix_timestamp: int = Field(description="When the call started, unix seconds.")
    billing_seconds: int = Field(description="Talk time, from answer to hangup.")
    recording: str = Field(
        description="Recording file name for play_recording; empty when not recorded.",
        examples=["call_recording_dl5m5j5hfh4n8njj1oor.mp3"],
    )


class Histories(BaseModel):
    data: list[CallRecord] = Field(description="This page's calls, newest first.")
    total: int = Field(description="How many calls the whole window holds.")
    page: int = Field(description="The page returned (1-based).")
    limit: int = Field(description="The page size used.")


class RecordingLink(BaseModel):
    url: str = Field(description="A signed URL of the MP3; anyone holding it can download it.")
    expire: int = Field(description="When the URL stops working, unix seconds.")
