"""WeChat's XML, both ways: callback bodies parsed with defusedxml (no DTD, so no entity expansion and no
external entities), and passive replies (text, news, the encrypted envelope) written as CDATA strings."""

from __future__ import annotations

import re
from collections.abc import Mapping

import defusedxml
import defusedxml.ElementTree as SafeET

from bot.errors import BadRequestError

MAX_BODY_BYTES = 64 * 1024
# XML 1.0 forbids these characters even inside CDATA; a reply containing one would be rejected whole
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def parse_xml(body: bytes | str) -> dict[str, str]:
    """The `<xml>` element's children as {tag: text}; nested elements (e.g. ScanCodeInfo) are skipped."""
    if len(body) > MAX_BODY_BYTES:
        raise BadRequestError(f"XML body is over {MAX_BODY_BYTES} bytes")
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except defusedxml.DefusedXmlException as err:
        raise BadRequestError("XML with a DTD or entities is refused") from err
    except SafeET.ParseError as err:
        raise BadRequestError("body is not well-formed XML") from err
    except (ValueError, LookupError) as err:  # expat: a multi-byte or unknown encoding= (WeChat sends UTF-8)
        raise BadRequestError("XML must be UTF-8") from err
    if root.tag != "xml":
        raise BadRequestError("body must be an <xml> element")
    return {child.tag: (child.text or "").strip() for child in root if len(child) == 0}


def _cdata(text: str) -> str:
    # "]]>" would end the section early: split it across two sections
    return "<![CDATA[" + _NOT_XML.sub("", text).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _elements(fields: Mapping[str, str | int]) -> str:
    return "".join(
        f"<{tag}>{value if isinstance(value, int) else _cdata(value)}</{tag}>" for tag, value in fields.items()
    )


def _head(to_user: str, from_user: str, create_time: int, msg_type: str) -> str:
    return _elements({"ToUserName": to_user, "FromUserName": from_user, "CreateTime": create_time, "MsgType": msg_type})


def text_reply(to_user: str, from_user: str, content: str, create_time: int) -> str:
    """A passive text reply."""
    return f"<xml>{_head(to_user, from_user, create_time, 'text')}{_elements({'Content': content})}</xml>"


def news_reply(to_user: str, from_user: str, article: Mapping[str, str], create_time: int) -> str:
    """A passive news reply of one article: {"title", "description", "url", "picurl"}."""
    item = _elements({tag: article.get(tag.lower(), "") for tag in ("Title", "Description", "PicUrl", "Url")})
    head = _head(to_user, from_user, create_time, "news")
    return f"<xml>{head}<ArticleCount>1</ArticleCount><Articles><item>{item}</item></Articles></xml>"


def encrypted_envelope(encrypt: str, signature: str, timestamp: str, nonce: str) -> str:
    """The safe-mode reply: the encrypted reply with its msg_signature."""
    return (
        f"<xml><Encrypt>{_cdata(encrypt)}</Encrypt><MsgSignature>{_cdata(signature)}</MsgSignature>"
        f"<TimeStamp>{timestamp}</TimeStamp><Nonce>{_cdata(nonce)}</Nonce></xml>"
    )
