"""The Telegram Bot API stand-in, spoken to over plain HTTP (urllib), as any client would."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import pytest

from tests.telegram_standin import TelegramStandIn

CHAT = 4242
KEYBOARD = {
    "inline_keyboard": [
        [{"text": "Camiseta", "callback_data": "product:1"}],
        [{"text": "Ver site", "url": "https://example.com/loja"}],
    ]
}


@pytest.fixture
def standin() -> Iterator[TelegramStandIn]:
    with TelegramStandIn() as running:
        yield running
    assert running.internal_errors == []
    names = [t.name for t in threading.enumerate()]
    assert not [n for n in names if "telegram-standin" in n or "process_request_thread" in n]


def call(
    standin: TelegramStandIn,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    encoding: str = "form",
    token: str | None = None,
    timeout: float = 5,
) -> tuple[int, dict]:
    """One API call: GET when there are no params, else POST in the given encoding."""
    url = f"{standin.api_url}/bot{token or standin.token}/{method}"
    headers = {}
    data = None
    if params is not None and encoding == "json":
        data = json.dumps(params).encode()
        headers["Content-Type"] = "application/json"
    elif params is not None and encoding == "form":
        form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
        data = urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif params is not None and encoding == "multipart":
        boundary = uuid.uuid4().hex
        lines = []
        for key, value in params.items():
            text = value if isinstance(value, str) else json.dumps(value)
            lines += [f"--{boundary}", f'Content-Disposition: form-data; name="{key}"', "", text]
        data = "\r\n".join([*lines, f"--{boundary}--", ""]).encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    request = Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def send_keyboard(standin: TelegramStandIn) -> dict:
    status, body = call(
        standin,
        "sendMessage",
        {"chat_id": CHAT, "text": "Escolha:", "reply_markup": KEYBOARD},
    )
    assert status == 200, body
    return body["result"]


def test_get_me_answers_the_bot_user_in_the_envelope(standin: TelegramStandIn) -> None:
    status, body = call(standin, "getMe")

    assert status == 200
    assert body == {
        "ok": True,
        "result": {
            "id": 123456,
            "is_bot": True,
            "first_name": "Loja Teste",
            "username": "loja_teste_bot",
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        },
    }
    assert [(c["method"], c["status"]) for c in standin.calls()] == [("getMe", 200)]


def test_unknown_methods_are_not_found(standin: TelegramStandIn) -> None:
    assert call(standin, "sendTelepathy", {"chat_id": CHAT}) == (
        404,
        {"ok": False, "error_code": 404, "description": "Not Found"},
    )


def test_send_message_form_encoded_with_an_inline_keyboard(standin: TelegramStandIn) -> None:
    said = standin.user_says(CHAT, "/start", first_name="Ana", last_name="Lima")

    message = send_keyboard(standin)

    assert said["message_id"] == 1
    assert message["message_id"] == 2  # one counter per chat, shared with the user
    assert message["from"] == {
        "id": 123456,
        "is_bot": True,
        "first_name": "Loja Teste",
        "username": "loja_teste_bot",
    }
    assert message["chat"] == {
        "id": CHAT,
        "type": "private",
        "first_name": "Ana",
        "last_name": "Lima",
    }
    assert isinstance(message["date"], int)
    assert abs(message["date"] - time.time()) < 5
    assert message["text"] == "Escolha:"
    assert message["reply_markup"] == KEYBOARD
    assert standin.sent(CHAT) == [message]
    assert standin.sent(CHAT + 1) == []
    assert standin.calls("sendMessage")[0]["params"]["reply_markup"] == KEYBOARD


def test_send_message_as_json_parses_html_and_multipart_works_too(
    standin: TelegramStandIn,
) -> None:
    standin.user_says(CHAT, "oi")

    status, body = call(
        standin,
        "sendMessage",
        {
            "chat_id": CHAT,
            "text": "<b>Total</b>: R$ 10 &amp; frete",
            "parse_mode": "HTML",
            "reply_markup": KEYBOARD,
        },
        encoding="json",
    )
    assert status == 200, body
    assert body["result"]["text"] == "Total: R$ 10 & frete"
    assert body["result"]["entities"] == [{"offset": 0, "length": 5, "type": "bold"}]
    assert body["result"]["reply_markup"] == KEYBOARD

    status, body = call(
        standin,
        "sendMessage",
        {"chat_id": str(CHAT), "text": "Olá", "reply_markup": KEYBOARD},
        encoding="multipart",
    )
    assert status == 200, body
    assert (body["result"]["text"], body["result"]["reply_markup"]) == ("Olá", KEYBOARD)
    assert standin.wait_for_text(CHAT, "Olá")["message_id"] == 3


def test_bad_markup_and_unknown_chats_are_bad_requests(standin: TelegramStandIn) -> None:
    assert call(standin, "sendMessage", {"chat_id": 999, "text": "oi"})[1]["description"] == (
        "Bad Request: chat not found"
    )
    standin.user_says(CHAT, "oi")
    status, body = call(
        standin, "sendMessage", {"chat_id": CHAT, "text": "R$ 10.00", "parse_mode": "MarkdownV2"}
    )
    assert status == 400
    assert body["description"].startswith("Bad Request: can't parse entities: Character '.'")
    status, body = call(
        standin,
        "sendMessage",
        {"chat_id": CHAT, "text": "x", "reply_markup": {"inline_keyboard": [[{"text": "y"}]]}},
    )
    assert status == 400
    assert "Text buttons are unallowed in the inline keyboard" in body["description"]
    assert standin.sent() == []


def test_get_updates_forgets_updates_below_the_offset(standin: TelegramStandIn) -> None:
    first = standin.user_says(CHAT, "/start")
    standin.user_says(CHAT, "quero uma camiseta")

    status, body = call(standin, "getUpdates", {"timeout": 0})
    assert status == 200
    updates = body["result"]
    assert [u["message"]["text"] for u in updates] == ["/start", "quero uma camiseta"]
    assert updates[0]["message"] == first
    assert first["entities"] == [{"offset": 0, "length": 6, "type": "bot_command"}]
    assert updates[1]["update_id"] == updates[0]["update_id"] + 1

    # not confirmed yet: the same updates again
    assert call(standin, "getUpdates", {"offset": updates[0]["update_id"]})[1]["result"] == updates
    assert (
        call(standin, "getUpdates", {"offset": updates[1]["update_id"]})[1]["result"]
        == (updates[1:])
    )
    assert standin.pending_updates() == 1
    assert call(standin, "getUpdates", {"offset": updates[1]["update_id"] + 1})[1]["result"] == []
    assert standin.pending_updates() == 0

    later = standin.user_says(CHAT, "obrigada")
    (update,) = call(standin, "getUpdates", {"limit": 10})[1]["result"]
    assert update["update_id"] > updates[1]["update_id"]
    assert update["message"] == later


def test_long_poll_answers_as_soon_as_an_update_arrives(standin: TelegramStandIn) -> None:
    timer = threading.Timer(0.2, standin.user_says, (CHAT, "oi"))
    timer.start()
    started = time.monotonic()

    status, body = call(standin, "getUpdates", {"timeout": 5}, timeout=10)

    elapsed = time.monotonic() - started
    timer.join()
    assert status == 200
    assert [u["message"]["text"] for u in body["result"]] == ["oi"]
    assert 0.15 < elapsed < 2


def test_long_poll_answers_empty_after_the_timeout(standin: TelegramStandIn) -> None:
    started = time.monotonic()

    assert call(standin, "getUpdates", {"timeout": 1}, timeout=10) == (
        200,
        {"ok": True, "result": []},
    )
    assert 0.9 < time.monotonic() - started < 2


def test_a_second_get_updates_terminates_the_waiting_one(standin: TelegramStandIn) -> None:
    answers: list[tuple[int, dict]] = []
    first = threading.Thread(
        target=lambda: answers.append(call(standin, "getUpdates", {"timeout": 5}, timeout=10))
    )
    first.start()
    deadline = time.monotonic() + 2
    while not standin.calls("getUpdates") and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)

    assert call(standin, "getUpdates", {"timeout": 0}) == (200, {"ok": True, "result": []})
    first.join(timeout=3)
    assert answers[0][0] == 409
    assert answers[0][1]["description"].startswith("Conflict: terminated by other getUpdates")


def test_fail_next_answers_429_with_retry_after_and_does_nothing(
    standin: TelegramStandIn,
) -> None:
    standin.user_says(CHAT, "oi")
    standin.fail_next("sendMessage", retry_after=3)

    status, body = call(standin, "sendMessage", {"chat_id": CHAT, "text": "Olá"})

    assert status == 429
    assert body == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 3",
        "parameters": {"retry_after": 3},
    }
    assert standin.sent() == []
    assert call(standin, "sendMessage", {"chat_id": CHAT, "text": "Olá"})[0] == 200
    assert [c["status"] for c in standin.calls("sendmessage")] == [429, 200]


def test_a_wrong_or_refused_token_is_unauthorized(standin: TelegramStandIn) -> None:
    unauthorized = (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    assert call(standin, "getMe", token="123456:WRONG") == unauthorized

    standin.refuse_token()
    assert call(standin, "getMe") == unauthorized
    assert call(standin, "getUpdates", {"timeout": 0}) == unauthorized

    standin.refuse_token(False)
    assert call(standin, "getMe")[0] == 200


def test_texts_must_have_1_to_4096_characters(standin: TelegramStandIn) -> None:
    standin.user_says(CHAT, "oi")

    assert call(standin, "sendMessage", {"chat_id": CHAT, "text": ""}) == (
        400,
        {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"},
    )
    assert call(standin, "sendMessage", {"chat_id": CHAT, "text": "x" * 4097}) == (
        400,
        {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"},
    )
    assert call(standin, "sendMessage", {"chat_id": CHAT, "text": "x" * 4096})[0] == 200
    assert len(standin.sent(CHAT)) == 1


def test_callback_queries_and_their_answers(standin: TelegramStandIn) -> None:
    standin.user_says(CHAT, "/start")
    message = send_keyboard(standin)

    query = standin.user_presses(CHAT, message["message_id"], "product:1")

    updates = call(standin, "getUpdates", {"allowed_updates": ["message", "callback_query"]})[1]
    assert updates["result"][-1]["callback_query"] == query
    assert isinstance(query["id"], str)
    assert query["from"]["id"] == CHAT
    assert query["message"]["message_id"] == message["message_id"]
    assert query["message"]["reply_markup"] == KEYBOARD
    assert isinstance(query["chat_instance"], str)
    assert query["data"] == "product:1"
    with pytest.raises(AssertionError, match="no button"):
        standin.user_presses(CHAT, message["message_id"], "product:2")

    params = {"callback_query_id": query["id"], "text": "Adicionado"}
    assert call(standin, "answerCallbackQuery", params) == (200, {"ok": True, "result": True})
    assert standin.answered_callbacks() == [query["id"]]
    too_old = "Bad Request: query is too old and response timeout expired or query ID is invalid"
    assert call(standin, "answerCallbackQuery", params)[1]["description"] == too_old
    assert call(standin, "answerCallbackQuery", {"callback_query_id": "1"})[0] == 400


def test_edit_message_text(standin: TelegramStandIn) -> None:
    standin.user_says(CHAT, "/start")
    message = send_keyboard(standin)
    new_keyboard = {"inline_keyboard": [[{"text": "Pagar", "callback_data": "pay"}]]}

    status, body = call(
        standin,
        "editMessageText",
        {
            "chat_id": CHAT,
            "message_id": message["message_id"],
            "text": "Carrinho: 1 item",
            "reply_markup": new_keyboard,
        },
    )

    assert status == 200, body
    edited = body["result"]
    assert edited["message_id"] == message["message_id"]
    assert (edited["text"], edited["reply_markup"]) == ("Carrinho: 1 item", new_keyboard)
    assert isinstance(edited["edit_date"], int)
    assert standin.edits(CHAT) == [edited]
    assert standin.sent(CHAT)[0]["text"] == "Escolha:"  # as sent
    standin.user_presses(CHAT, message["message_id"], "pay")

    same = {"chat_id": CHAT, "message_id": message["message_id"], "text": "Carrinho: 1 item"}
    same["reply_markup"] = new_keyboard
    assert call(standin, "editMessageText", same)[1]["description"].startswith(
        "Bad Request: message is not modified"
    )
    assert call(standin, "editMessageText", {"chat_id": CHAT, "message_id": 77, "text": "x"}) == (
        400,
        {"ok": False, "error_code": 400, "description": "Bad Request: message to edit not found"},
    )


def test_a_webhook_makes_get_updates_conflict(standin: TelegramStandIn) -> None:
    params = {"url": "https://loja.example.com/telegram/", "secret_token": "s3cr3t"}
    status, body = call(standin, "setWebhook", params)
    assert (status, body["result"]) == (200, True)
    assert standin.webhook == params
    standin.user_says(CHAT, "oi")

    assert call(standin, "getUpdates") == (
        409,
        {
            "ok": False,
            "error_code": 409,
            "description": "Conflict: can't use getUpdates method while webhook is active; "
            "use deleteWebhook to delete the webhook first",
        },
    )
    info = call(standin, "getWebhookInfo")[1]["result"]
    assert (info["url"], info["pending_update_count"]) == (params["url"], 1)

    assert call(standin, "deleteWebhook")[1]["result"] is True
    assert standin.webhook is None
    assert len(call(standin, "getUpdates")[1]["result"]) == 1
    status, body = call(standin, "setWebhook", {"url": "http://insecure.example.com/"})
    assert status == 400 and "HTTPS" in body["description"]


def test_stop_refuses_connections_and_start_serves_on_the_same_port(
    standin: TelegramStandIn,
) -> None:
    url = standin.api_url
    waiting: list[BaseException | tuple] = []

    def long_poll() -> None:
        try:
            waiting.append(call(standin, "getUpdates", {"timeout": 30}, timeout=10))
        except (URLError, OSError) as error:
            waiting.append(error)

    poller = threading.Thread(target=long_poll)
    poller.start()
    deadline = time.monotonic() + 2
    while not standin.calls("getUpdates") and time.monotonic() < deadline:
        time.sleep(0.01)

    started = time.monotonic()
    standin.stop()
    poller.join(timeout=3)
    assert time.monotonic() - started < 2
    assert len(waiting) == 1 and isinstance(waiting[0], (URLError, OSError))  # dropped

    with pytest.raises(URLError) as refused:
        call(standin, "getMe")
    assert isinstance(refused.value.reason, ConnectionRefusedError)

    standin.user_says(CHAT, "oi")  # users keep writing while the bot cannot reach Telegram
    standin.start()
    assert standin.api_url == url
    assert call(standin, "getMe")[0] == 200
    assert [u["message"]["text"] for u in call(standin, "getUpdates")[1]["result"]] == ["oi"]


def test_photos_can_be_downloaded_with_get_file(standin: TelegramStandIn) -> None:
    message = standin.user_sends_photo(CHAT, caption="comprovante")
    largest = message["photo"][-1]
    assert set(largest) == {"file_id", "file_unique_id", "file_size", "width", "height"}

    status, body = call(standin, "getFile", {"file_id": largest["file_id"]})

    assert status == 200, body
    path = body["result"]["file_path"]
    with urlopen(f"{standin.api_url}/file/bot{standin.token}/{path}", timeout=5) as response:
        assert response.read()[:2] == b"\xff\xd8"  # a JPEG
