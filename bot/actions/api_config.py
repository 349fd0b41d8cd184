"""`actions: apis:` in kefu.yml: business-API actions declared instead of coded.

```yaml
actions:
  apis:
    action_track_parcel:
      url: "https://parcels.example.com/v1/track/{{ tracking_no }}"
      headers: {Authorization: "Bearer ${PARCEL_API_TOKEN}"}
      slots: {parcel_status: data.status}
      response: utter_parcel_status
```
"""

from __future__ import annotations

import re
from typing import Any, Literal

import jinja2
from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
DEFAULT_ERROR_RESPONSE = "utter_api_error"
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DOTTED_PATH = re.compile(r"^[^.\s]+(\.[^.\s]+)*$")
_SYNTAX = jinja2.Environment(autoescape=False)  # noqa: S701 - only parses; nothing is rendered into HTML


class ApiSpec(BaseModel):
    """One business-API action: the request it sends, what it keeps from the answer and what it says."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: HttpMethod = Field("GET", description="HTTP method")
    url: str = Field(
        description="jinja2 template over the slots, e.g. https://api.example.com/parcels/{{ tracking_no }}; "
        "values are URL-escaped; ${VAR} reads an environment variable, or the file VAR_FILE names"
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Request headers; ${VAR} reads an environment variable (or the file VAR_FILE names); never logged",
    )
    json_body: JsonValue = Field(
        None,
        alias="json",
        description="JSON request body; its strings are jinja2 templates over the slots, and a string that is "
        "exactly `{{ slot }}` sends the slot's value as it is (number, list, null)",
    )
    timeout_s: float = Field(5.0, gt=0, le=120, description="Seconds to wait for each attempt")
    retries: int = Field(
        2, ge=0, le=10, description="Retries after a connection error, a timeout, HTTP 429 or 5xx (never after 4xx)"
    )
    backoff_s: float = Field(0.2, ge=0, le=30, description="Wait before the first retry; doubles before each next")
    slots: dict[str, str] = Field(
        default_factory=dict, description="Slot name -> dotted path into the JSON answer, e.g. data.status or items.0"
    )
    response: str | None = Field(None, description="Domain response uttered on success, with the slots and `response`")
    error_response: str = Field(
        DEFAULT_ERROR_RESPONSE,
        description="Domain response uttered when the API fails after the retries; without it in the domain, "
        "a built-in apology in the user's language",
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper_case(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://", "${", "{{")):
            example = "https://api.example.com/orders/{{ order_id }}"
            raise ValueError(f"must be an http(s) URL such as {example}, not {value!r}")
        _check_template(value)
        return value

    @field_validator("slots")
    @classmethod
    def _dotted_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for slot, path in value.items():
            if not _DOTTED_PATH.match(path):
                raise ValueError(f"slot {slot!r} has the path {path!r}; write a dotted path such as data.status")
        return value

    @model_validator(mode="after")
    def _body_needs_a_method_with_one(self) -> ApiSpec:
        if self.json_body is not None and self.method in ("GET", "DELETE"):
            raise ValueError(f"`json` is a request body, which {self.method} does not send: use POST, PUT or PATCH")
        for text in template_strings(self.json_body):
            _check_template(text)
        return self


def template_strings(value: JsonValue) -> list[str]:
    """Every string inside a JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in template_strings(item)]
    if isinstance(value, dict):
        return [text for item in value.values() for text in template_strings(item)]
    return []


def _check_template(text: str) -> None:
    try:
        _SYNTAX.parse(text)
    except jinja2.TemplateSyntaxError as err:
        raise ValueError(f"{text!r} is not a valid jinja2 template: {err.message}") from err
