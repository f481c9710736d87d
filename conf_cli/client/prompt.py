"""The prompt's one grammar: turning a typed line into a control message or a local command. Sans-I/O.

Plain text is chat to everyone; a line starting with ``/`` is a command. Names containing spaces are
quoted: ``/msg "Ada Lovelace" hello``. The meeting loop, the calls beside a meeting, ``conf call`` and the
answer to a request for control (``y``, ``n``) all read lines with :func:`parse_line` and
:func:`parse_answer`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from conf_cli.protocol.control import (
    MAX_POLL_OPTIONS,
    MIN_POLL_OPTIONS,
    PERMISSIONS,
    REACTION_EMOJI,
    REACTIONS,
    Message,
)

HELP: list[tuple[str, str]] = [
    ("TEXT", "chat to everyone"),
    ("/msg NAME TEXT", "private message to one participant"),
    ("/who", "list participants, their roles and what they share"),
    ("/admin NAME", "make NAME an admin (host)"),
    ("/member NAME", "make NAME a plain member again (host)"),
    ("/host NAME", "hand the host role to NAME (host)"),
    ("/forbid WHAT [NAME]", f"forbid {'|'.join(PERMISSIONS)} for members, or for NAME (host, admins)"),
    ("/permit WHAT [NAME]", "allow it again (host, admins)"),
    ("/kick NAME", "remove NAME from the meeting; they stay out until /unban (host, admins)"),
    ("/unban NAME", "let NAME, once kicked, join again (host, admins)"),
    ("/lock, /unlock", "stop or allow new people joining (host, admins)"),
    ("/admit NAME, /admit all", "let NAME (or everyone) in from the waiting room (host, admins)"),
    ("/deny NAME", "turn NAME away from the waiting room (host, admins)"),
    ("/waiting on|off", "hold newcomers in a waiting room, or not (off lets everyone in; host, admins)"),
    ("/end", "close the meeting for everyone (host, admins)"),
    (
        "/share KIND [PATH] [KEY=VALUE ...]",
        "share pattern, tone, screen, audio, camera or a file (fps=15 ...)",
    ),
    ("/unshare KIND", "stop sharing audio, video or screen"),
    ("/volume NAME 0-200", "play NAME's audio louder or softer here (100 is as sent, 0 mutes)"),
    ("/follow [on|off]", "the preview shows whoever is speaking (the active speaker)"),
    ("/control NAME", "ask NAME for control of their desktop (it shows in a window)"),
    ("/accept, /reject", "answer a request for control of your desktop (y, n)"),
    ("/revoke", "end remote control: take your desktop back, or let go"),
    ("/call NAME [KIND]", "call NAME one to one (media goes straight between you), sharing KIND"),
    ("/answer [KIND], /decline", "answer a call (sharing KIND: audio, camera, pattern ...)"),
    ("/hangup", "end the call"),
    ("/hand [up|down]", "raise or lower your hand (without a word: the other way round)"),
    ("/lower NAME|all", "lower someone's raised hand, or every hand (host, admins)"),
    (
        "/react EMOJI",
        f"a reaction everyone in your room sees briefly: {' '.join(REACTION_EMOJI)} (or thumbsup, clap ...)",
    ),
    (
        "/poll [--named] QUESTION | OPTION | OPTION ...",
        "ask everyone a question; --named shows who chose what (host)",
    ),
    ("/poll close", "close the poll: everyone sees the results (host)"),
    ("/vote N", "vote for option N of the open poll (again to change your vote)"),
    ("/breakout create N", "plan N breakout rooms (host)"),
    (
        "/breakout assign NAME ROOM",
        "put NAME in room ROOM (0: the main room); at once if the rooms are open (host)",
    ),
    ("/breakout shuffle", "spread everyone over the rooms at random (host)"),
    ("/breakout open [MINUTES]", "send everyone to their rooms, for MINUTES if given (host)"),
    ("/breakout broadcast TEXT", "a message to every room (host)"),
    ("/breakout visit ROOM|main", "go to a room yourself (host)"),
    ("/breakout close", "bring everyone back to the main room (host)"),
    ("/spotlight NAME|off", "pin NAME's video for everyone, or unpin (host)"),
    ("/rename NAME NEW_NAME", "give NAME another name (host)"),
    ("/ask-unmute NAME", "ask NAME to turn their microphone on; only they can (host)"),
    ("/invite [NAME]", "show the web page's link that joins this meeting (for NAME)"),
    ("/leave", "leave the meeting"),
    ("/help", "this list"),
]


CALL_USAGE = {
    "call": "/call NAME [KIND]",
    "answer": "/answer [KIND]",
    "decline": "/decline",
    "hangup": "/hangup",
}
"""The call commands (``/call NAME [KIND]`` and the answers to a call) and how each is written."""
ANSWERS = {"y": "accept", "yes": "accept", "n": "reject", "no": "reject"}
"""Short answers to a request for control of our desktop, while one waits."""


class CommandError(ValueError):
    """A line that is not a valid command; the message says how to write it."""


@dataclass(frozen=True)
class LocalCommand:
    """A command the client handles itself: ``help``, ``invite``, ``share``, ``unshare`` (the client
    captures), ``control`` and ``accept`` (the client opens a viewer, or a screen and an input injector,
    first), ``reject`` (bound to the request it answers), ``revoke`` (the client stops being
    controlled at once, before it tells the server), and the call commands of :data:`CALL_USAGE`."""

    name: str
    args: tuple[str, ...] = ()
    options: tuple[tuple[str, str], ...] = ()
    request: object = None
    """For ``accept`` and ``reject``: the request for control the answer was typed for (the client's
    :class:`~conf_cli.client.desktop_control.Asking`), or None for whichever waits when it is carried out."""


def parse_line(line: str) -> Message | LocalCommand | None:
    """Parse one typed line; ``None`` for a blank line."""
    text = line.strip()
    if not text:
        return None
    if not text.startswith("/") or text.startswith("//"):
        return {"type": "chat", "text": text[1:] if text.startswith("//") else text}
    command, _, rest = text[1:].partition(" ")
    command = command.lower()
    rest = rest.strip()
    match command:
        case "help" | "?":
            return LocalCommand("help")
        case "who":
            return {"type": "who"}
        case "share":
            words = _split(rest, "/share KIND [PATH] [KEY=VALUE ...]")
            if not words:
                raise CommandError("usage: /share KIND [PATH] [KEY=VALUE ...]")
            plain = [w for w in words if "=" not in w]
            options = tuple((key, value) for key, _, value in (w.partition("=") for w in words if "=" in w))
            if len(plain) > 2:
                raise CommandError("usage: /share KIND [PATH] [KEY=VALUE ...]")
            return LocalCommand("share", tuple(plain), options)
        case "unshare":
            kind = rest.lower()
            if kind not in ("audio", "video", "screen"):
                raise CommandError("usage: /unshare audio|video|screen")
            return LocalCommand("unshare", (kind,))
        case "volume":
            name, level = _name_then_rest(rest, "/volume NAME 0-200")
            if not level.isdigit() or not 0 <= int(level) <= 200:
                raise CommandError("usage: /volume NAME 0-200 (percent: 100 is as sent, 0 mutes)")
            return LocalCommand("volume", (name, str(int(level))))
        case "follow":
            if rest.lower() not in ("", "on", "off"):
                raise CommandError("usage: /follow [on|off]")
            return LocalCommand("follow", (rest.lower() or "on",))
        case "control":
            return LocalCommand("control", (_only_name(rest, "/control NAME"),))
        case "accept":
            return LocalCommand("accept", (_only_name(rest, "/accept [NAME]"),) if rest else ())
        case "reject":
            return LocalCommand("reject", (_only_name(rest, "/reject [NAME]"),) if rest else ())
        case "revoke":
            return LocalCommand("revoke")
        case "call" | "answer" | "decline" | "hangup":
            return _call_command(command, rest)
        case "invite":
            return LocalCommand("invite", (_only_name(rest, "/invite [NAME]"),) if rest else ())
        case "leave" | "quit" | "exit":
            return {"type": "leave"}
        case "end":
            return {"type": "end"}
        case "lock" | "unlock":
            return {"type": command}
        case "msg":
            name, text_part = _name_then_rest(rest, "/msg NAME TEXT")
            if not text_part:
                raise CommandError("usage: /msg NAME TEXT")
            return {"type": "chat", "to": name, "text": text_part}
        case "admin" | "member" | "host":
            name = _only_name(rest, f"/{command} NAME")
            return {"type": "set_role", "name": name, "role": command}
        case "kick":
            return {"type": "kick", "name": _only_name(rest, "/kick NAME")}
        case "unban":
            return {"type": "unban", "name": _only_name(rest, "/unban NAME")}
        case "admit":
            if rest.lower() == "all":
                return {"type": "admit", "all": True}
            return {"type": "admit", "name": _only_name(rest, "/admit NAME|all")}
        case "deny":
            return {"type": "deny", "name": _only_name(rest, "/deny NAME")}
        case "waiting":
            if rest.lower() not in ("on", "off"):
                raise CommandError("usage: /waiting on|off")
            return {"type": "set_waiting_room", "enabled": rest.lower() == "on"}
        case "forbid" | "permit":
            what, _, who = rest.partition(" ")
            what = what.lower()
            if what not in PERMISSIONS:
                raise CommandError(f"usage: /{command} {'|'.join(PERMISSIONS)} [NAME]")
            message: Message = {"type": command, "what": what}
            if who.strip():
                message["name"] = _only_name(who, f"/{command} WHAT NAME")
            return message
        case "hand":
            word = rest.lower()
            if word not in ("", "up", "down"):
                raise CommandError("usage: /hand [up|down]")
            hand: Message = {"type": "hand"}
            if word:
                hand["raised"] = word == "up"
            return hand
        case "lower":
            if rest.lower() == "all":
                return {"type": "lower_hand", "all": True}
            return {"type": "lower_hand", "name": _only_name(rest, "/lower NAME|all")}
        case "react":
            return {"type": "react", "emoji": reaction(rest)}
        case "poll":
            return _poll_command(rest)
        case "vote":
            if not rest.isascii() or not rest.isdigit() or len(rest) > 3:
                raise CommandError("usage: /vote N (the option's number, from 1)")
            return {"type": "vote", "choice": int(rest)}
        case "breakout":
            return _breakout_command(rest)
        case "spotlight":
            if rest.lower() in ("off", "none"):
                return {"type": "spotlight"}
            return {"type": "spotlight", "name": _only_name(rest, "/spotlight NAME|off")}
        case "rename":
            name, new_name = _name_then_rest(rest, "/rename NAME NEW_NAME")
            return {"type": "rename", "name": name, "new_name": _only_name(new_name, "/rename NAME NEW_NAME")}
        case "ask-unmute":
            return {"type": "ask_unmute", "name": _only_name(rest, "/ask-unmute NAME")}
    raise CommandError(f"unknown command /{command}; type /help for the list")


def parse_answer(line: str) -> str | None:
    """``accept`` or ``reject`` for a short answer (``y``, ``n`` ...) to a request for control; else None."""
    return ANSWERS.get(line.strip().lower())


def unknown_command(command: LocalCommand) -> CommandError:
    """The error for a command the grammar knows but the place it was typed in does not take."""
    return CommandError(f"unknown command /{command.name}; type /help for the list")


def _call_command(command: str, rest: str) -> LocalCommand:
    """``/call NAME [KIND]``, ``/answer [KIND]``, ``/decline``, ``/hangup``: shell-like words."""
    usage = CALL_USAGE[command]
    try:
        words = shlex.split(rest)
    except ValueError:
        raise CommandError(f"usage: {usage}") from None
    most = 2 if command == "call" else 1 if command == "answer" else 0
    if len(words) > most or (command == "call" and not words):
        raise CommandError(f"usage: {usage}")
    return LocalCommand(command, tuple(words))


def _split(rest: str, usage: str) -> list[str]:
    try:
        return shlex.split(rest)
    except ValueError:
        raise CommandError(f"usage: {usage} (unbalanced quotes)") from None


def _only_name(rest: str, usage: str) -> str:
    rest = rest.strip()
    if rest[:1] in ("'", '"'):
        words = _split(rest, usage)
        name = words[0] if words else ""
    else:
        # An unquoted name is taken whole and as typed: /kick Ada Lovelace, /kick O'Brien
        name = rest
    if not name.strip():
        raise CommandError(f"usage: {usage}")
    return name


def _name_then_rest(rest: str, usage: str) -> tuple[str, str]:
    rest = rest.strip()
    if not rest:
        raise CommandError(f"usage: {usage}")
    if rest[0] in "\"'":
        quote = rest[0]
        end = rest.find(quote, 1)
        if end < 0:
            raise CommandError(f"usage: {usage} (unbalanced quotes)")
        name, tail = rest[1:end], rest[end + 1 :]
    else:
        name, _, tail = rest.partition(" ")
    if not name.strip():
        raise CommandError(f"usage: {usage}")
    return name, tail.strip()


def reaction(word: str) -> str:
    """The reaction a typed word stands for: an emoji of REACTION_EMOJI, or one of REACTIONS' names."""
    word = word.strip()
    emoji = REACTIONS.get(word.lower(), word)
    if emoji not in REACTION_EMOJI and emoji + "\ufe0f" in REACTION_EMOJI:  # ❤ typed without VS16
        emoji += "\ufe0f"
    if emoji not in REACTION_EMOJI:
        raise CommandError(
            f"usage: /react EMOJI, one of {' '.join(REACTION_EMOJI)} (or {', '.join(REACTIONS)})"
        )
    return emoji


POLL_USAGE = "/poll [--named] QUESTION | OPTION | OPTION ... (or /poll close)"


def _poll_command(rest: str) -> Message:
    if rest.lower() == "close":
        return {"type": "poll_close"}
    named = rest.startswith("--named")
    if named:
        rest = rest[len("--named") :]
    parts = [part.strip() for part in rest.split("|")]
    if len(parts) < 1 + MIN_POLL_OPTIONS or not all(parts):
        raise CommandError(f"usage: {POLL_USAGE}")
    if len(parts) > 1 + MAX_POLL_OPTIONS:
        raise CommandError(f"a poll has at most {MAX_POLL_OPTIONS} options")
    poll: Message = {"type": "poll_start", "question": parts[0], "options": parts[1:]}
    if named:
        poll["named"] = True
    return poll


BREAKOUT_USAGE = (
    "/breakout create N | assign NAME ROOM | shuffle | open [MINUTES] | broadcast TEXT | visit ROOM | close"
)


def _number(word: str, usage: str) -> int:
    if not word.isascii() or not word.isdigit() or len(word) > 4:
        raise CommandError(f"usage: {usage}")
    return int(word)


def _room(word: str, usage: str) -> int:
    return 0 if word.lower() == "main" else _number(word, usage)


def _breakout_command(rest: str) -> Message:
    action, _, args = rest.partition(" ")
    action, args = action.lower(), args.strip()
    match action:
        case "create":
            return {"type": "breakout_create", "rooms": _number(args, "/breakout create N")}
        case "assign":
            usage = "/breakout assign NAME ROOM"
            who, _, room = args.rpartition(" ")
            return {"type": "breakout_assign", "name": _only_name(who, usage), "room": _room(room, usage)}
        case "shuffle" | "close" if not args:
            return {"type": f"breakout_{action}"}
        case "open":
            opened: Message = {"type": "breakout_open"}
            if args:
                opened["minutes"] = _number(args, "/breakout open [MINUTES]")
            return opened
        case "broadcast" if args:
            return {"type": "breakout_broadcast", "text": args}
        case "visit":
            return {"type": "breakout_visit", "room": _room(args, "/breakout visit ROOM|main")}
    raise CommandError(f"usage: {BREAKOUT_USAGE}")
