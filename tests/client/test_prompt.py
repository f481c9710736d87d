"""The meeting prompt: typed lines into control messages."""

from __future__ import annotations

import re
from contextlib import suppress

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from conf_cli.client.prompt import (
    ANSWERS,
    HELP,
    CommandError,
    LocalCommand,
    parse_answer,
    parse_line,
    unknown_command,
)
from conf_cli.errors import ProtocolError
from conf_cli.protocol.control import (
    PERMISSIONS,
    check_name,
    client_message_types,
    decode_client_message,
    encode,
)


def usage_error(line: str) -> str:
    with pytest.raises(CommandError) as info:
        parse_line(line)
    return str(info.value)


# -- chat ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("line", ["", " ", "\t", "   \n"])
def test_blank_lines_are_nothing(line):
    assert parse_line(line) is None


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ("hello", "hello"),
        ("  hello world  ", "hello world"),
        ("what about /who?", "what about /who?"),
        ("//who", "/who"),
        ("// not a command", "/ not a command"),
        ("///", "//"),
        ('"quoted" stays', '"quoted" stays'),
    ],
)
def test_plain_text_is_chat_to_everyone(line, text):
    assert parse_line(line) == {"type": "chat", "text": text}


# -- commands without arguments -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/who", {"type": "who"}),
        ("/WHO", {"type": "who"}),
        ("  /who  ", {"type": "who"}),
        ("/leave", {"type": "leave"}),
        ("/quit", {"type": "leave"}),
        ("/exit", {"type": "leave"}),
        ("/end", {"type": "end"}),
        ("/lock", {"type": "lock"}),
        ("/Lock", {"type": "lock"}),
        ("/unlock", {"type": "unlock"}),
        ("/UNLOCK", {"type": "unlock"}),
    ],
)
def test_simple_commands(line, message):
    assert parse_line(line) == message


@pytest.mark.parametrize("line", ["/help", "/HELP", "/?", "/help me"])
def test_help_is_handled_locally(line):
    assert parse_line(line) == LocalCommand("help")


def test_help_lists_every_command_it_parses():
    listed = " ".join(usage for usage, _ in HELP)
    for command in ("msg", "who", "admin", "member", "host", "forbid", "permit", "kick", "lock", "unlock"):
        assert f"/{command}" in listed
    for command in ("end", "leave", "help", "control", "accept", "reject", "revoke"):
        assert f"/{command}" in listed


@pytest.mark.parametrize(
    ("line", "args"),
    [("/invite", ()), ("/INVITE Ada Lovelace", ("Ada Lovelace",)), ('/invite "Bo"', ("Bo",))],
)
def test_invite_is_handled_locally(line, args):
    assert parse_line(line) == LocalCommand("invite", args)


@pytest.mark.parametrize("line", ["/frobnicate", "/Frobnicate now", "/", "/ who"])
def test_unknown_commands_are_refused(line):
    command = line[1:].partition(" ")[0].lower()
    assert usage_error(line) == f"unknown command /{command}; type /help for the list"


# -- /msg ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "name", "text"),
    [
        ("/msg Ada hello", "Ada", "hello"),
        ("/MSG Ada hello there  friend", "Ada", "hello there  friend"),
        ("/msg   Ada    hi", "Ada", "hi"),
        ('/msg "Ada Lovelace" hi there', "Ada Lovelace", "hi there"),
        ("/msg 'Ada Lovelace' hi", "Ada Lovelace", "hi"),
        ('/msg "O\'Brien" hi', "O'Brien", "hi"),
        ("/msg O'Brien hi", "O'Brien", "hi"),
        ('/msg "Ada"hi', "Ada", "hi"),
        ('/msg Ada "quoted text"', "Ada", '"quoted text"'),
    ],
)
def test_private_message(line, name, text):
    assert parse_line(line) == {"type": "chat", "to": name, "text": text}


@pytest.mark.parametrize(
    "line", ["/msg", "/msg   ", "/msg Ada", "/msg Ada   ", '/msg "Ada Lovelace"', '/msg "" hi']
)
def test_private_message_needs_a_name_and_text(line):
    assert usage_error(line) == "usage: /msg NAME TEXT"


@pytest.mark.parametrize("line", ['/msg "Ada hi', "/msg 'Ada hi"])
def test_private_message_with_unbalanced_quotes(line):
    assert usage_error(line) == "usage: /msg NAME TEXT (unbalanced quotes)"


# -- roles and kick -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "member", "host"])
@pytest.mark.parametrize(
    ("typed", "name"),
    [
        ("Ada", "Ada"),
        ('"Ada Lovelace"', "Ada Lovelace"),
        ("'Ada Lovelace'", "Ada Lovelace"),
        ("Ada Lovelace", "Ada Lovelace"),
        ("O'Brien", "O'Brien"),
        ('"O\'Brien"', "O'Brien"),
        ("Ada  Lovelace", "Ada  Lovelace"),
        ("back\\slash", "back\\slash"),
    ],
)
def test_set_role(role, typed, name):
    assert parse_line(f"/{role} {typed}") == {"type": "set_role", "name": name, "role": role}
    assert parse_line(f"/{role.upper()}   {typed}  ") == {"type": "set_role", "name": name, "role": role}


@pytest.mark.parametrize("role", ["admin", "member", "host"])
@pytest.mark.parametrize("rest", ["", "   ", '""', "''", '"  "'])
def test_set_role_needs_a_name(role, rest):
    assert usage_error(f"/{role} {rest}") == f"usage: /{role} NAME"


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("/kick Bob", "Bob"),
        ("/kick Ada Lovelace", "Ada Lovelace"),
        ('/kick "Ada Lovelace"', "Ada Lovelace"),
        ('/kick "Ada" ignored', "Ada"),
        ("/kick O'Brien", "O'Brien"),
        ("/KICK bob", "bob"),
    ],
)
def test_kick(line, name):
    assert parse_line(line) == {"type": "kick", "name": name}


@pytest.mark.parametrize(
    ("line", "error"), [("/kick", ""), ("/kick ''", ""), ('/kick "Bob', " (unbalanced quotes)")]
)
def test_kick_needs_a_name(line, error):
    assert usage_error(line) == f"usage: /kick NAME{error}"


def test_unban():
    assert parse_line('/unban "Ada Lovelace"') == {"type": "unban", "name": "Ada Lovelace"}
    assert parse_line("/unban Bob") == {"type": "unban", "name": "Bob"}
    assert usage_error("/unban") == "usage: /unban NAME"


# -- forbid and permit --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["forbid", "permit"])
@pytest.mark.parametrize("what", PERMISSIONS)
def test_forbid_and_permit_for_members(command, what):
    assert parse_line(f"/{command} {what}") == {"type": command, "what": what}
    assert parse_line(f"/{command.upper()} {what.upper()}") == {"type": command, "what": what}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/forbid chat Bob", {"type": "forbid", "what": "chat", "name": "Bob"}),
        ('/forbid screen "Ada Lovelace"', {"type": "forbid", "what": "screen", "name": "Ada Lovelace"}),
        ("/permit audio Ada Lovelace", {"type": "permit", "what": "audio", "name": "Ada Lovelace"}),
        ("/permit VIDEO O'Brien", {"type": "permit", "what": "video", "name": "O'Brien"}),
        ("/forbid control    ", {"type": "forbid", "what": "control"}),
    ],
)
def test_forbid_and_permit_for_one(line, message):
    assert parse_line(line) == message


@pytest.mark.parametrize("command", ["forbid", "permit"])
@pytest.mark.parametrize("rest", ["", "microphone", "chat,video", "everything Bob"])
def test_forbid_and_permit_need_a_known_kind(command, rest):
    assert (
        usage_error(f"/{command} {rest}")
        == f"usage: /{command} audio|video|screen|control|chat|record [NAME]"
    )


def test_forbid_with_an_empty_quoted_name():
    assert usage_error('/forbid chat ""') == "usage: /forbid WHAT NAME"
    assert usage_error("/permit chat 'Bob") == "usage: /permit WHAT NAME (unbalanced quotes)"


# -- properties ---------------------------------------------------------------------------------------

# Display names the server accepts, that a person could type unquoted.
typeable_names = st.text(min_size=1, max_size=64).filter(lambda name: name[0] not in "'\"" and _valid(name))


def _valid(name: str) -> bool:
    try:
        check_name(name)
    except ProtocolError:
        return False
    return True


@given(st.text())
def test_parse_line_only_ever_raises_command_error(line):
    try:
        result = parse_line(line)
    except CommandError as exc:
        assert str(exc)
        return
    if isinstance(result, dict):
        assert result["type"] in client_message_types()
    else:
        local = ("help", "invite", "share", "unshare", "control", "accept", "reject", "revoke")
        assert result is None or result.name in (*local, "call", "answer", "decline", "hangup")


@given(st.text().map(lambda text: "/" + text))
def test_parse_line_only_ever_raises_command_error_on_commands(line):
    with suppress(CommandError):
        parse_line(line)


@given(
    st.sampled_from(["/kick", "/admin", "/msg", "/forbid chat", "/permit", "/host", "/who", "/x", ""]),
    st.text(st.characters() | st.sampled_from("\"' \\"), max_size=30),
)
def test_parsed_commands_either_validate_or_fail_cleanly_at_the_server(prefix, rest):
    try:
        result = parse_line(f"{prefix} {rest}")
    except CommandError:
        return
    if isinstance(result, dict):
        with suppress(ProtocolError):
            assert decode_client_message(encode(result)) == result


@given(typeable_names)
def test_any_valid_name_can_be_typed_unquoted(name):
    assert parse_line(f"/kick {name}") == {"type": "kick", "name": name}
    assert parse_line(f"/admin {name}") == {"type": "set_role", "name": name, "role": "admin"}
    assert parse_line(f"/forbid chat {name}") == {"type": "forbid", "what": "chat", "name": name}


@given(typeable_names, st.text(min_size=1))
def test_any_valid_name_without_double_quotes_can_be_messaged_quoted(name, text):
    assume('"' not in name and text.strip())
    assert parse_line(f'/msg "{name}" {text}') == {"type": "chat", "to": name, "text": text.strip()}


@given(st.text(min_size=1))
def test_text_not_starting_with_a_slash_is_chat_as_typed(text):
    assume(text.strip() and not text.strip().startswith("/"))
    assert parse_line(text) == {"type": "chat", "text": text.strip()}


# -- remote control -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("/control Ada", LocalCommand("control", ("Ada",))),
        ("/control Ada Lovelace", LocalCommand("control", ("Ada Lovelace",))),
        ("/accept", LocalCommand("accept")),
        ("/accept Bob", LocalCommand("accept", ("Bob",))),
        ("/reject", LocalCommand("reject")),  # the client binds it to the request it answers
        ("/reject Bob", LocalCommand("reject", ("Bob",))),
        ("/revoke", LocalCommand("revoke")),  # the client stops being controlled before telling the server
        ("/REVOKE", LocalCommand("revoke")),
    ],
)
def test_remote_control_commands(line, parsed):
    assert parse_line(line) == parsed
    if isinstance(parsed, dict):
        assert decode_client_message(encode(parsed)) == parsed


def test_control_needs_a_name():
    assert usage_error("/control") == "usage: /control NAME"


# -- the call commands and the short answers: the same grammar ---------------------------------------


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("/call Bob", LocalCommand("call", ("Bob",))),
        ('/call "Ada Lovelace" camera', LocalCommand("call", ("Ada Lovelace", "camera"))),
        ("/CALL Bob", LocalCommand("call", ("Bob",))),
        ("/answer", LocalCommand("answer")),
        ("/answer audio", LocalCommand("answer", ("audio",))),
        ("/decline", LocalCommand("decline")),
        ("/hangup", LocalCommand("hangup")),
    ],
)
def test_call_commands(line: str, command: LocalCommand) -> None:
    assert parse_line(line) == command


@pytest.mark.parametrize(
    ("line", "usage"),
    [
        ("/call", "/call NAME [KIND]"),
        ("/call a b c", "/call NAME [KIND]"),
        ('/call "Bob', "/call NAME [KIND]"),
        ("/answer a b", "/answer [KIND]"),
        ("/decline now", "/decline"),
        ("/hangup x", "/hangup"),
    ],
)
def test_call_commands_say_how_they_are_written(line: str, usage: str) -> None:
    with pytest.raises(CommandError, match=f"^usage: {re.escape(usage)}$"):
        parse_line(line)


def test_short_answers_to_a_request_for_control() -> None:
    assert [parse_answer(word) for word in ("y", " YES ", "n", "No")] == [
        "accept",
        "accept",
        "reject",
        "reject",
    ]
    assert parse_answer("maybe") is None
    assert parse_answer("/accept") is None  # a command: parse_line reads it
    assert set(ANSWERS.values()) == {"accept", "reject"}


def test_an_unknown_command_error_names_the_command() -> None:
    assert (
        str(unknown_command(LocalCommand("call", ("Bob",))))
        == "unknown command /call; type /help for the list"
    )


@pytest.mark.parametrize(
    ("line", "args"),
    [
        ("/volume Bob 150", ("Bob", "150")),
        ('/volume "Ada L" 0', ("Ada L", "0")),
        ("/VOLUME Cy 200", ("Cy", "200")),
    ],
)
def test_volume_is_handled_locally(line, args):
    assert parse_line(line) == LocalCommand("volume", args)


@pytest.mark.parametrize(
    "line", ["/volume", "/volume Bob", "/volume Bob 201", "/volume Bob -1", "/volume Bob x"]
)
def test_a_volume_outside_0_to_200_is_refused(line):
    assert usage_error(line).startswith("usage: /volume NAME 0-200")


def test_follow_is_handled_locally():
    assert parse_line("/follow") == LocalCommand("follow", ("on",))
    assert parse_line("/follow off") == LocalCommand("follow", ("off",))
    assert usage_error("/follow maybe") == "usage: /follow [on|off]"
    listed = " ".join(usage for usage, _ in HELP)
    assert "/volume" in listed and "/follow" in listed
