// What a meeting offers besides media and chat (docs/protocol.md, "In the meeting"): raised hands,
// reactions, polls, breakout rooms, the host's spotlight, renaming and asking to unmute.
//
// app.js hands each of these events to FEATURES[type], redraws the feature's buttons through
// FEATURE_CONTROLS and each person's host controls through PERSON_CONTROLS. A control shows only when
// the server takes its request (web_ready's `requests`), so the page fits the server it came from.
"use strict";

const REACTIONS = ["👍", "👎", "👏", "🎉", "❤️", "😂", "😮", "🤔", "🙏", "👋", "✅", "❌"];
const REACTION_NAMES = {
  "👍": "thumbs up", "👎": "thumbs down", "👏": "clap", "🎉": "celebrate", "❤️": "heart", "😂": "laugh",
  "😮": "surprised", "🤔": "thinking", "🙏": "thanks", "👋": "wave", "✅": "yes", "❌": "no",
};

function can(type) {
  return state.requests.has(type);
}

function isHost() {
  return state.role === "host";
}

// -- raised hands ------------------------------------------------------------------------------------------

FEATURES.hand_raised = (m) => {
  state.hands = state.hands.filter((n) => n !== m.name);
  state.hands.splice(Math.max(0, m.position - 1), 0, m.name);
  if (m.name !== state.me) note(`${m.name} raised a hand (${ordinal(m.position)}).`, "note", leader());
  render();
};

FEATURES.hand_lowered = (m) => {
  state.hands = state.hands.filter((n) => n !== m.name);
  if (m.name === state.me && m.by && m.by !== state.me) note(`${m.by} lowered your hand.`, "note", true);
  render();
};

FEATURE_CONTROLS.hand = () => {
  const b = $("toggle-hand");
  b.hidden = !can("hand");
  const up = state.hands.includes(state.me);
  b.setAttribute("aria-pressed", String(up));
  b.querySelector(".label").textContent = up ? "Lower hand" : "Raise hand";
};

$("toggle-hand").onclick = () => send({ type: "hand", raised: !state.hands.includes(state.me) });

PERSON_CONTROLS.hand = (li, name) => {
  if (state.hands.includes(name) && can("lower_hand"))
    li.append(button("lower hand", { type: "lower_hand", name }, `Lower ${name}'s hand`));
};

// -- reactions ---------------------------------------------------------------------------------------------

FEATURES.reaction = (m) => {
  const bubble = document.createElement("div");
  bubble.className = "reaction";
  bubble.textContent = `${m.emoji} ${m.name}`;
  bubble.setAttribute("aria-label", `${m.name}: ${REACTION_NAMES[m.emoji] || m.emoji}`);
  $("reactions").append(bubble);
  while ($("reactions").children.length > 8) $("reactions").firstChild.remove();
  setTimeout(() => bubble.remove(), 4000);
};

FEATURE_CONTROLS.reactions = () => {
  $("toggle-reactions").hidden = !can("react");
};

function drawReactionMenu() {
  const menu = $("reaction-menu");
  for (const emoji of REACTIONS) {
    const b = document.createElement("button");
    b.type = "button";
    b.setAttribute("role", "menuitem");
    b.dataset.emoji = emoji;
    b.textContent = emoji;
    b.setAttribute("aria-label", REACTION_NAMES[emoji]);
    b.onclick = () => {
      send({ type: "react", emoji });
      closeReactions();
    };
    menu.append(b);
  }
  menu.addEventListener("keydown", (e) => { // arrows move along the menu
    const items = [...menu.querySelectorAll("button")];
    const at = items.indexOf(document.activeElement);
    if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      e.preventDefault();
      items[(at + (e.key === "ArrowRight" ? 1 : items.length - 1)) % items.length].focus();
    }
  });
}

$("toggle-reactions").onclick = () => {
  const menu = $("reaction-menu");
  if (!menu.hidden) return closeReactions();
  menu.hidden = false;
  $("toggle-reactions").setAttribute("aria-expanded", "true");
  menu.querySelector("button")?.focus();
};
drawReactionMenu();

// -- polls -------------------------------------------------------------------------------------------------

FEATURES.poll_started = (m) => {
  state.poll = { ...m, choice: null, results: null };
  note(`${m.by} asks: ${m.question}`, "note", true);
  renderPoll();
};

FEATURES.vote_recorded = (m) => {
  if (state.poll && state.poll.poll === m.poll) state.poll.choice = m.choice;
  renderPoll();
};

FEATURES.poll_closed = (m) => {
  state.poll = { ...m, choice: state.poll?.poll === m.poll ? state.poll.choice : null, results: m.counts };
  const lines = m.options.map((o, i) => `${o}: ${m.counts[i]}`).join(", ");
  note(`Poll closed: ${m.question} (${lines}; ${m.voters} voted).`);
  renderPoll();
};

function renderPoll() {
  const box = $("poll");
  const poll = state.poll;
  box.hidden = !poll;
  if (!poll) return;
  box.replaceChildren();
  const title = document.createElement("h2");
  title.id = "poll-question";
  title.textContent = poll.question;
  box.setAttribute("aria-labelledby", "poll-question");
  box.append(title);
  const total = poll.results ? poll.results.reduce((a, b) => a + b, 0) || 1 : 0;
  poll.options.forEach((option, i) => {
    const choice = i + 1;
    if (poll.results) {
      const row = document.createElement("div");
      row.className = "result";
      row.style.setProperty("--share", `${(100 * poll.results[i]) / total}%`);
      row.textContent = `${option}: ${poll.results[i]}${poll.choice === choice ? " (your vote)" : ""}`;
      box.append(row);
    } else {
      const b = button(option, { type: "vote", poll: poll.poll, choice }, null, "option");
      b.setAttribute("aria-pressed", String(poll.choice === choice));
      box.append(b);
    }
  });
  const foot = document.createElement("div");
  foot.className = "poll-foot";
  if (!poll.results) {
    const what = document.createElement("span");
    what.textContent = poll.named ? "Named: the host sees your vote." : "Anonymous.";
    foot.append(what);
    if (isHost() && can("poll_close")) foot.append(button("Close poll", { type: "poll_close" }, null, "small"));
  } else {
    foot.append(button("Dismiss", () => { state.poll = null; renderPoll(); }, "Dismiss the poll's results", "small"));
  }
  box.append(foot);
}

function startPollForm() {
  const form = document.createElement("form");
  form.id = "poll-form";
  form.className = "host-form";
  form.innerHTML = '<label>Question <input name="question" maxlength="200" required></label>' +
    '<label>Options, one a line <textarea name="options" rows="3" required></textarea></label>' +
    '<label class="inline"><input type="checkbox" name="named"> named votes</label>' +
    '<button type="submit" class="small">Start poll</button>';
  form.onsubmit = (e) => {
    e.preventDefault();
    const options = form.options.value.split("\n").map((o) => o.trim()).filter(Boolean);
    send({ type: "poll_start", question: form.question.value.trim(), options, named: form.named.checked });
    form.reset();
  };
  return form;
}

// -- breakout rooms ----------------------------------------------------------------------------------------

FEATURES.breakout_rooms = (m) => {
  state.breakout = { rooms: m.rooms, open: m.open, assignments: new Map(m.assignments.map((a) => [a.name, a.room])) };
  renderPeople();
};

FEATURES.breakout_opened = (m) => {
  if (state.breakout) state.breakout.open = true;
  note(`Breakout rooms opened by ${m.by}${m.ends_in ? ` for ${Math.round(m.ends_in / 60)} min` : ""}.`, "note", true);
  renderPeople();
};

FEATURES.breakout_moved = (m) => {
  state.rooms.set(m.name, m.room);
  if (m.name === state.me) {
    state.room = m.room;
    note(m.room ? `You are in breakout room ${m.room}.` : "You are back in the main room.", "note", true);
    $("room-label").textContent = m.room ? `room ${m.room}` : "";
  }
  render();
};

FEATURES.breakout_broadcast = (m) => {
  chatLine(m.from, m.text, "to every room");
  note(`${m.from} to every room: ${m.text}`, "note", true);
};

FEATURES.breakout_closed = (m) => {
  state.room = 0;
  state.rooms.clear();
  if (state.breakout) state.breakout.open = false;
  $("room-label").textContent = "";
  note(m.reason === "timeout" ? "The breakout rooms' time is up." : `Breakout rooms closed${m.by ? ` by ${m.by}` : ""}.`);
  render();
};

function breakoutControls() {
  const box = document.createElement("div");
  box.className = "host-form";
  const b = state.breakout;
  const rooms = document.createElement("input");
  rooms.type = "number";
  rooms.min = "1";
  rooms.max = "20";
  rooms.value = String(b?.rooms || 2);
  rooms.setAttribute("aria-label", "Number of breakout rooms");
  rooms.className = "narrow";
  box.append(rooms, button("make rooms", () => send({ type: "breakout_create", rooms: Number(rooms.value) }),
    "Make the breakout rooms", "small"));
  if (b) {
    box.append(button("shuffle", { type: "breakout_shuffle" }, "Put people in rooms at random", "small"));
    box.append(b.open
      ? button("close rooms", { type: "breakout_close" }, "Bring everyone back to the main room", "small danger")
      : button("open rooms", { type: "breakout_open" }, "Open the breakout rooms", "small"));
    if (b.open) {
      const text = document.createElement("input");
      text.setAttribute("aria-label", "Message to every room");
      text.placeholder = "to every room";
      box.append(text, button("send", () => {
        if (text.value.trim()) send({ type: "breakout_broadcast", text: text.value });
        text.value = "";
      }, "Send to every room", "small"));
    }
  }
  return box;
}

PERSON_CONTROLS.breakout = (li, name) => {
  const b = state.breakout;
  if (!b || !isHost() || !can("breakout_assign")) return;
  const select = document.createElement("select");
  select.setAttribute("aria-label", `Breakout room for ${name}`);
  for (let room = 0; room <= b.rooms; room++) {
    const option = document.createElement("option");
    option.value = String(room);
    option.textContent = room ? `room ${room}` : "no room";
    select.append(option);
  }
  select.value = String(b.assignments.get(name) || 0);
  select.onchange = () => send({ type: "breakout_assign", name, room: Number(select.value) });
  li.append(select);
};

// -- spotlight, renaming, asking to unmute -----------------------------------------------------------------

FEATURES.spotlight = (m) => {
  state.spotlight = m.name || null;
  if (m.name) note(`${m.by} put ${m.name === state.me ? "you" : m.name} in the spotlight.`);
  render();
};

FEATURES.participant_renamed = (m) => {
  const rename = (n) => (n === m.name ? m.new_name : n);
  const p = state.participants.get(m.name);
  if (p) {
    state.participants.delete(m.name);
    state.participants.set(m.new_name, { ...p, name: m.new_name });
  }
  if (state.me === m.name) state.me = m.new_name;
  state.hands = state.hands.map(rename);
  for (const key of ["speaker", "pinned", "spotlight"]) state[key] = state[key] && rename(state[key]);
  for (const info of Object.values(state.tracks)) info.name = rename(info.name);
  for (const tile of [...$("videos").children]) if (tile.dataset.name === m.name) tile.remove();
  note(`${m.by} renamed ${m.name} to ${m.new_name}.`);
  render();
};

FEATURES.unmute_requested = (m) => {
  if (m.name !== state.me) return note(`You asked ${m.name} to turn their microphone on.`);
  ask(`${m.by} asks you to turn your microphone on.`, [
    ["Unmute", () => { if (!state.sending.audio) toggle("audio"); }],
    ["Not now", null],
  ]);
};

PERSON_CONTROLS.host = (li, name, p) => {
  if (!isHost()) return;
  if (can("spotlight")) {
    li.append(state.spotlight === name
      ? button("unspotlight", { type: "spotlight" }, `Take ${name} out of the spotlight`)
      : button("spotlight", { type: "spotlight", name }, `Put ${name} in the spotlight for everyone`));
  }
  if (can("ask_unmute") && micState(name) === "off")
    li.append(button("ask to unmute", { type: "ask_unmute", name }, `Ask ${name} to turn their microphone on`));
  if (can("rename") && !state.e2ee) {
    if (state.renaming?.name === name) li.append(renameForm(name));
    else li.append(button("rename", () => {
      state.renaming = { name, value: name };
      renderPeople();
      $("rename-input")?.select();
    }, `Rename ${name}`));
  }
};

// The host types a new name in the person's row; the form outlives the list being drawn anew.
function renameForm(name) {
  const form = document.createElement("form");
  form.className = "rename";
  const input = document.createElement("input");
  input.id = "rename-input";
  input.value = state.renaming.value;
  input.maxLength = 64;
  input.setAttribute("aria-label", `New name for ${name}`);
  input.oninput = () => { state.renaming.value = input.value; };
  input.onkeydown = (e) => {
    if (e.key !== "Escape") return;
    e.stopPropagation();
    state.renaming = null;
    renderPeople();
  };
  form.append(input, button("OK", () => form.requestSubmit(), `Save the new name for ${name}`));
  form.onsubmit = (e) => {
    e.preventDefault();
    const wanted = input.value.trim();
    if (wanted && wanted !== name) send({ type: "rename", name, new_name: wanted });
    state.renaming = null;
    renderPeople();
  };
  return form;
}

// The host's meeting-wide tools, under the list of people: polls and breakout rooms.
FEATURE_CONTROLS.hostTools = () => {
  const box = $("host-tools");
  const show = isHost() && (can("poll_start") || can("breakout_create"));
  box.hidden = !show;
  if (!show || box.contains(document.activeElement)) return; // keep what the host is typing
  box.replaceChildren();
  if (can("poll_start") && !(state.poll && !state.poll.results)) box.append(startPollForm());
  if (can("breakout_create")) box.append(breakoutControls());
};
