// conf in the browser: what the meeting looks like. Notes and chat, the tiles and their layout, the
// active speaker, the control bar, the panels and the people with their host controls. Everything here
// is called by app.js (loaded after this file), which holds the page's state and speaks to the server.
"use strict";

const TILE_RATIO = 16 / 9;

// -- notes, chat and prompts --------------------------------------------------------------------------------

function setStatus(text) {
  $("status").textContent = text;
}

function toast(text, cls = "") {
  const div = document.createElement("div");
  div.className = `toast ${cls}`;
  div.textContent = text;
  $("toasts").append(div);
  while ($("toasts").children.length > 3) $("toasts").firstChild.remove();
  setTimeout(() => div.remove(), cls === "error" ? 6000 : 4000);
}

// A line in the meeting's log (the chat panel); errors, and notes that are `loud`, show over the stage too.
function note(text, cls = "note", loud = false) {
  const li = document.createElement("li");
  li.className = cls;
  li.textContent = text;
  logLine(li);
  if (loud || cls === "error") toast(text, cls);
}

function chatLine(from, text, extra) {
  const li = document.createElement("li");
  const who = document.createElement("span");
  who.className = "from";
  who.textContent = extra ? `${from} (${extra})` : from;
  li.append(who, document.createTextNode(text));
  logLine(li);
  if (state.panel !== "chat" && from !== state.me) {
    state.unread += 1;
    toast(`${from}: ${text.length > 80 ? `${text.slice(0, 80)}...` : text}`);
    renderControls();
  }
}

function logLine(li) {
  const log = $("chat-log");
  const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(li);
  while (log.children.length > 500) log.firstChild.remove();
  if (atEnd) log.scrollTop = log.scrollHeight;
}

// A question for this person (say, the host asking to unmute): text and buttons, keyboard first.
function ask(text, choices) {
  const box = $("prompt");
  $("prompt-text").textContent = text;
  const buttons = box.querySelector(".prompt-buttons");
  buttons.replaceChildren();
  for (const [label, act] of choices) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.onclick = () => {
      box.hidden = true;
      act?.();
    };
    buttons.append(b);
  }
  box.hidden = false;
  buttons.firstChild?.focus();
}

// -- the people, their tiles ----------------------------------------------------------------------------

function sharing(name, kind, on) {
  const p = state.participants.get(name);
  if (!p) return;
  const now = new Set(p.sharing || []);
  if (on) now.add(kind);
  else now.delete(kind);
  p.sharing = [...now];
  render();
}

function micState(name) {
  const p = state.participants.get(name);
  if (!p) return "off";
  const forbidden = (p.forbidden || []).includes("audio") ||
    (p.role === "member" && state.meetingForbidden.includes("audio"));
  const on = name === state.me ? state.sending.audio : (p.sharing || []).includes("audio");
  if (on) return "on";
  return forbidden ? "forbidden" : "off";
}

// The receiving slots' tracks by owner: {name: {video, screen}} (MediaStreamTracks), live ones only.
function remoteTracks() {
  const out = {};
  if (!state.pc) return out;
  for (const t of state.pc.getTransceivers().slice(SLOTS.length)) {
    const info = state.tracks[t.mid];
    const track = t.receiver.track;
    if (!info || info.ssrc === null || !track) continue;
    if (track.kind === "audio") {
      attachAudio(t.mid, track);
      continue;
    }
    const p = state.participants.get(info.name);
    if (!p || !(p.sharing || []).includes(info.kind)) continue; // stopped: show no stale picture
    (out[info.name] ||= {})[info.kind] = track;
  }
  return out;
}

function attachAudio(mid, track) {
  const key = `mid-${mid}`;
  if (document.querySelector(`audio[data-key="${key}"]`)) return;
  const audio = document.createElement("audio");
  audio.autoplay = true;
  audio.dataset.key = key;
  audio.srcObject = new MediaStream([track]);
  document.body.append(audio);
}

function tileFor(key, name, kind) {
  let tile = [...$("videos").children].find((t) => t.dataset.key === key);
  if (!tile) {
    tile = document.createElement("div");
    tile.className = "tile";
    tile.dataset.key = key;
    tile.dataset.name = name;
    tile.dataset.kind = kind;
    tile.setAttribute("role", "listitem");
    tile.tabIndex = 0; // keyboard: focus a tile, Enter pins it in the speaker view
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.muted = true; // sound plays through the <audio> elements
    const avatar = document.createElement("div");
    avatar.className = "avatar";
    avatar.setAttribute("aria-hidden", "true");
    avatar.textContent = kind === "screen" ? "screen" : initials(name);
    const badges = document.createElement("div");
    badges.className = "badges";
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = name;
    badges.append(label);
    if (kind === "person") {
      const mic = document.createElement("span");
      mic.className = "mic";
      mic.setAttribute("role", "img");
      const hand = document.createElement("span");
      hand.className = "hand";
      hand.setAttribute("role", "img");
      hand.hidden = true;
      badges.append(mic, hand);
    } else {
      const what = document.createElement("span");
      what.textContent = "screen";
      badges.append(what);
    }
    tile.append(video, avatar, badges);
    tile.addEventListener("dblclick", () => pin(name));
    tile.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        pin(name);
      }
    });
    $("videos").append(tile);
  }
  return tile;
}

function show(tile, track) {
  const video = tile.querySelector("video");
  const current = video.srcObject ? video.srcObject.getVideoTracks()[0] : null;
  if (current !== (track || null)) video.srcObject = track ? new MediaStream([track]) : null;
  tile.classList.toggle("has-video", Boolean(track));
}

function renderTiles() {
  if (!state.me) return;
  const tracks = remoteTracks();
  const wanted = new Set();
  for (const [name] of state.participants) {
    const key = `person:${name}`;
    wanted.add(key);
    const tile = tileFor(key, name, "person");
    const local = name === state.me;
    tile.classList.toggle("local", local);
    const camera = local
      ? (state.sending.video ? state.local?.getVideoTracks()[0] : null)
      : tracks[name]?.video;
    show(tile, camera);
    const mic = micState(name);
    tile.dataset.mic = mic;
    const micEl = tile.querySelector(".mic");
    micEl.innerHTML = icon(mic === "on" ? "mic" : "micoff");
    const micText = { on: "microphone on", off: "microphone off", forbidden: "microphone muted by the host" }[mic];
    micEl.setAttribute("aria-label", micText);
    const position = state.hands.indexOf(name) + 1;
    const hand = tile.querySelector(".hand");
    hand.hidden = position === 0;
    hand.textContent = position ? `✋ ${position}` : "";
    hand.setAttribute("aria-label", position ? `hand raised, ${ordinal(position)}` : "");
    tile.querySelector(".name").textContent = local ? `${name} (you)` : name;
    tile.classList.toggle("active-speaker", state.speaker === name);
    const parts = [local ? `${name} (you)` : name, micText];
    if (position) parts.push(`hand raised, ${ordinal(position)} in line`);
    if (state.speaker === name) parts.push("speaking");
    tile.setAttribute("aria-label", parts.join(", "));
    const screen = tracks[name]?.screen || (local && state.sending.screen ? state.screen?.getVideoTracks()[0] : null);
    if (screen) {
      const key2 = `screen:${name}`;
      wanted.add(key2);
      const st = tileFor(key2, name, "screen");
      show(st, screen);
      st.setAttribute("aria-label", `${name}'s screen`);
    }
  }
  for (const tile of [...$("videos").children]) if (!wanted.has(tile.dataset.key)) tile.remove();
  layout();
}

// Which tile the speaker view shows large: a pinned one, the host's spotlight, a shared screen, the
// active speaker, or anyone else.
function mainTile() {
  const tiles = [...$("videos").children];
  const find = (key) => tiles.find((t) => t.dataset.key === key);
  return (state.pinned && find(`person:${state.pinned}`)) ||
    (state.spotlight && find(`person:${state.spotlight}`)) ||
    tiles.find((t) => t.dataset.kind === "screen") ||
    (state.speaker && state.speaker !== state.me && find(`person:${state.speaker}`)) ||
    tiles.find((t) => t.dataset.name !== state.me) || tiles[0];
}

// Tiles fill the stage: the grid's columns and rows are chosen so that 16:9 tiles come out largest.
function layout() {
  const box = $("videos");
  const tiles = [...box.children];
  const width = box.clientWidth - 16;
  const height = box.clientHeight - 16;
  const speaker = state.view === "speaker" || Boolean(state.spotlight);
  box.classList.toggle("speaker", speaker);
  const main = speaker ? mainTile() : null;
  for (const t of tiles) t.classList.toggle("main", t === main);
  if (speaker) {
    const others = tiles.length - 1;
    box.classList.toggle("alone", others === 0);
    const strip = Math.max(64, Math.min(140, height * 0.22));
    const fit = Math.max(1, Math.floor(width / (strip * 1.2))); // strip tiles no narrower than 6:5
    box.style.setProperty("--cols", String(Math.max(1, Math.min(others, fit))));
    box.style.setProperty("--strip", `${strip}px`);
    return;
  }
  const n = Math.max(1, tiles.length);
  let best = { cols: 1, rows: n, size: 0 };
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const size = Math.min(width / cols, (height / rows) * TILE_RATIO);
    if (size > best.size) best = { cols, rows, size };
  }
  box.style.setProperty("--cols", String(best.cols));
  box.style.setProperty("--rows", String(best.rows));
}

function pin(name) {
  state.pinned = state.pinned === name ? null : name;
  if (state.pinned) state.view = "speaker";
  render();
}

// -- the control bar and the panels ------------------------------------------------------------------------

function setLabel(id, text) {
  $(id).querySelector(".label").textContent = text;
}

function renderControls() {
  const s = state.sending;
  setLabel("toggle-audio", s.audio ? "Mute" : "Unmute");
  $("toggle-audio").setAttribute("aria-pressed", String(s.audio));
  $("toggle-audio").querySelector(".icon").innerHTML = icon(s.audio ? "mic" : "micoff");
  setLabel("toggle-video", s.video ? "Stop camera" : "Start camera");
  $("toggle-video").setAttribute("aria-pressed", String(s.video));
  setLabel("toggle-screen", s.screen ? "Stop sharing" : "Share screen");
  $("toggle-screen").setAttribute("aria-pressed", String(s.screen));
  $("toggle-screen").hidden = !navigator.mediaDevices?.getDisplayMedia;
  const speaker = state.view === "speaker";
  setLabel("toggle-view", speaker ? "Grid view" : "Speaker view");
  $("toggle-view").setAttribute("aria-pressed", String(speaker));
  $("toggle-view").querySelector(".icon").innerHTML = icon(speaker ? "grid" : "speaker");
  for (const panel of ["chat", "people"]) {
    $(`toggle-${panel}`).setAttribute("aria-expanded", String(state.panel === panel));
    $(`panel-${panel}`).hidden = state.panel !== panel;
  }
  $("unread").hidden = state.unread === 0;
  $("unread").textContent = String(state.unread);
  $("unread").setAttribute("aria-label", `${state.unread} unread`);
  $("people-count").textContent = String(state.participants.size + state.waiting.length);
  $("people-count").setAttribute("aria-label", `${state.participants.size} in the meeting`);
  for (const el of document.querySelectorAll(".host-only")) el.hidden = !leader();
  $("toggle-lock").textContent = state.locked ? "Unlock" : "Lock";
  $("toggle-waiting").textContent = state.waitingRoom ? "Waiting room off" : "Waiting room on";
  for (const f of Object.values(FEATURE_CONTROLS)) f();
}

// Controls of meeting features beyond the core protocol: each redraws its own buttons.
const FEATURE_CONTROLS = {};

function openPanel(panel) {
  const next = state.panel === panel ? null : panel;
  state.panel = next;
  if (next === "chat") state.unread = 0;
  renderControls();
  if (next === "chat") $("chat-input").focus();
  else if (next) $(`panel-${next}`).focus();
  else $(`toggle-${panel}`).focus();
  layout();
}

function button(label, message, title, cls = "small") {
  const b = document.createElement("button");
  b.type = "button";
  b.className = cls;
  b.textContent = label;
  if (title) b.setAttribute("aria-label", title);
  b.onclick = typeof message === "function" ? message : () => send(message);
  return b;
}

// "REC by NAME" in the header while a recorder (conf record) is in the meeting.
function renderRecording() {
  const recorders = [...state.participants.values()].filter((p) => p.recorder).map((p) => p.name);
  const label = $("recording");
  label.hidden = recorders.length === 0;
  label.textContent = recorders.length ? `\u25CF REC by ${recorders.join(", ")}` : "";
}

// The list of people, with the host's and admins' controls for each.
function renderPeople() {
  renderRecording();
  // The list is drawn anew on every change: a keyboard user keeps the button they were on.
  const focused = document.activeElement;
  const typing = focused?.id === "rename-input";
  const keep = $("panel-people").contains(focused) && focused.tagName === "BUTTON"
    ? focused.getAttribute("aria-label") || focused.textContent : null;
  const list = $("participants");
  list.replaceChildren();
  const isHost = state.role === "host";
  for (const [name, p] of state.participants) {
    const li = document.createElement("li");
    li.dataset.name = name;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = name === state.me ? `${name} (you)` : name;
    const role = document.createElement("span");
    role.className = "role";
    const shares = (p.sharing || []).join(", ");
    const hand = state.hands.indexOf(name) + 1;
    const room = state.rooms.get(name);
    role.textContent = `${p.role}${shares ? ` · ${shares}` : ""}${hand ? ` · hand ${hand}` : ""}` +
      `${room ? ` · room ${room}` : ""}`;
    li.append(who, role);
    const other = name !== state.me && p.role !== "host";
    if (leader() && other && (isHost || p.role === "member")) {
      const muted = (p.forbidden || []).includes("audio");
      if (isHost) {
        li.append(p.role === "admin"
          ? button("make member", { type: "set_role", name, role: "member" }, `Make ${name} a member`)
          : button("make admin", { type: "set_role", name, role: "admin" }, `Make ${name} an admin`));
        li.append(button("make host", { type: "set_role", name, role: "host" }, `Make ${name} the host`));
      }
      li.append(muted
        ? button("allow audio", { type: "permit", what: "audio", name }, `Allow ${name}'s microphone`)
        : button("mute", { type: "forbid", what: "audio", name }, `Mute ${name}`));
      for (const f of Object.values(PERSON_CONTROLS)) f(li, name, p);
      li.append(button("kick", { type: "kick", name }, `Remove ${name} from the meeting`, "small danger"));
    }
    list.append(li);
  }
  const waiting = $("waiting");
  waiting.replaceChildren();
  $("waiting-section").hidden = !leader() || state.waiting.length === 0;
  for (const name of state.waiting) {
    const li = document.createElement("li");
    li.dataset.name = name;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = name;
    li.append(who,
      button("admit", { type: "admit", name }, `Let ${name} in`),
      button("deny", { type: "deny", name }, `Do not let ${name} in`, "small danger"));
    waiting.append(li);
  }
  if (leader() && state.waiting.length > 1) {
    const li = document.createElement("li");
    li.append(button("admit all", { type: "admit", all: true }, "Let everyone waiting in"));
    waiting.append(li);
  }
  renderControls();
  if (typing) $("rename-input")?.focus();
  else if (keep && !$("panel-people").contains(document.activeElement)) {
    const again = [...$("panel-people").querySelectorAll("button")]
      .find((b) => (b.getAttribute("aria-label") || b.textContent) === keep);
    again?.focus();
  }
}

// The host's controls of meeting features beyond the core protocol, per person in the list.
const PERSON_CONTROLS = {};

function render() {
  renderPeople();
  renderTiles();
}

function endView(text) {
  state.ended = text;
  if (state.pc) state.pc.close();
  state.pc = null;
  $("meeting-view").hidden = true;
  $("join-form").hidden = true;
  $("prompt").hidden = true;
  $("ended").hidden = false;
  $("ended-text").textContent = text;
  $("rejoin").focus();
  if (state.ws) state.ws.close();
}

function closeReactions() {
  $("reaction-menu").hidden = true;
  $("toggle-reactions").setAttribute("aria-expanded", "false");
  $("toggle-reactions").focus();
}
