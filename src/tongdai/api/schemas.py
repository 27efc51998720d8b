"""Response and request shapes, for the OpenAPI document (handlers build plain dicts)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Credentials(BaseModel):
    """The device that acts: its SIP user name and SIP password."""

    sipUser: str = Field(description="The device (SIP account) name.", examples=["thutran"])
    sipPassword: str = Field(description="The device's SIP password.", examples=["s3cret"])


class ClickToCallBody(Credentials):
    """The device that acts, and optionally the integrator's correlation for the call."""

    external_id: str | None = Field(
        None, max_length=128,
        description="Your own id for this call (1 to 128 characters, no control "
                    "characters), returned in every event of the call (device and app "
                    "websockets, webhooks) and in its history record and export; "
                    "histories can be searched by it. 400 `invalid_external_id` otherwise.",
        examples=["crm-ticket-1042"])
    metadata: dict[str, Any] | None = Field(
        None,
        description="A small JSON object (at most 1024 bytes as compact JSON) returned "
                    "with external_id in every event of the call and in its history "
                    "record. In a form body, JSON text. 400 `invalid_metadata` otherwise.",
        examples=[{"ticket": "T-1042", "campaign": "renewals"}])


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
    """One call: the seed's ten fields exactly as the seed API describes them (names and
    order), then tongdai's ``call_id`` (always) and ``external_id`` and ``metadata``
    (only when the call has them)."""

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
    # tongdai's, after the seed's ten.
    call_id: str = Field(description="The call's id, as click-to-call returned it and "
                                     "as its events carry it.")
    external_id: str | None = Field(
        None, description="Only for a click-to-call given one: its external_id.")
    metadata: dict[str, Any] | None = Field(
        None, description="Only for a click-to-call given one: its metadata object.")


class Histories(BaseModel):
    data: list[CallRecord] = Field(description="This page's calls, newest first.")
    total: int = Field(description="How many calls the whole window holds.")
    page: int = Field(description="The page returned (1-based).")
    limit: int = Field(description="The page size used.")
    next: str | None = Field(
        None, description="Only when the request has `after`: the `after` of the next "
                          "page, null when this page is the last.")


class RecordingLink(BaseModel):
    url: str = Field(description="A signed URL of the MP3; anyone holding it can download it.")
    expire: int = Field(description="When the URL stops working, unix seconds.")


class LiveCall(BaseModel):
    call_id: str
    state: Literal["ringing", "talking"]
    since: int = Field(description="In this state since, unix seconds.")


class DevicePresence(BaseModel):
    sip_user: str = Field(examples=["thutran"])
    display_name: str
    extension: str | None = Field(examples=["101"])
    online: bool = Field(description="The device has a live registration.")
    bindings: int = Field(description="How many live registrations (contacts) it has.")
    registered_until: int | None = Field(
        description="When its freshest registration expires unless renewed, unix seconds.")
    transport: str | None = Field(description="udp or tcp, of the freshest registration.")
    user_agent: str | None = Field(description="User-Agent of the freshest registration.")
    online_since: int | None = Field(
        description="When it last came online, if this server saw it; else null.")
    offline_since: int | None = Field(
        description="When it last went offline, if this server saw it; else null.")
    in_call: bool
    call_state: Literal["idle", "ringing", "talking"]
    calls: list[LiveCall] = Field(description="Its live calls, oldest first.")


class DeviceList(BaseModel):
    data: list[DevicePresence] = Field(description="The app's devices, by sip_user.")
