// conf in the browser: a meeting page over WebRTC.
//
// The page speaks the conf protocol (docs/protocol.md) over a WebSocket to the server's web service,
// which takes part in the meeting for it. The server offers the WebRTC session (web_offer) and the page
// answers (web_answer); the first three m-lines are the page's microphone, camera and screen, the
// others carry the meeting's tracks, described by MID in `tracks`.
//
// The view: one tile per person (camera or initials, name, microphone, raised hand) and one per shared
// screen, in a grid sized to the stage or in a speaker view; the active speaker is outlined. The server
// sends no speaker signal: the page finds it from the audio levels of the tracks it receives (WebRTC's
// own statistics: totalAudioEnergy over totalSamplesDuration per track, and the microphone's level).
"use strict";

const $ = (id) => document.getElementById(id);
const SLOTS = ["audio", "video", "screen"]; // the page's own send slots, in m-line order
const LEADERS = ["host", "admin"];
const SPEAKING = 0.02; // RMS level (0..1) above which a track counts as someone speaking
const LEVEL_EVERY = 250; // ms between two readings of the audio levels
const TILE_RATIO = 16 / 9;

const state = {
  ws: null,
  pc: null,
  iceServers: [],
  me: null,
  role: "member",
  meeting: null,
  participants: new Map(), // name -> {name, role, sharing, forbidden}
  tracks: {}, // mid -> {name, kind, ssrc}
  local: null, // MediaStream from the camera and microphone
  screen: null, // MediaStream of a shared screen
  sending: { audio: false, video: false, screen: false },
  meetingForbidden: [], // what members may not do, meeting-wide
  locked: false,
  waitingRoom: false,
  waiting: [], // names in the waiting room (host and admins see them)
  hands: [], // names with a raised hand, in order
  spotlight: null, // the name the host pinned for everyone
  pinned: null, // the name this page pinned for itself (speaker view)
  view: "grid",
  speaker: null, // the active speaker's name
  levels: new Map(), // name -> audio level (0..1), last reading
  panel: null, // "chat" | "people" | null
  unread: 0,
  ended: null,
  answered: false,
  joining: false,
  requests: new Set(), // the message types the server takes (web_ready): features show only if there
  poll: null, // the open or last closed poll
  breakout: null, // (host and admins) the breakout plan: {rooms, open, assignments: Map}
  rooms: new Map(), // name -> breakout room, while rooms are open
  room: 0, // our breakout room (0: the main room)
  ring: null, // E2ee.KeyRing: this page's keys, made before joining where the browser can encrypt
  e2ee: false, // in an end-to-end encrypted meeting
  worker: null, // the media worker that runs SFrame (sframe-worker.js)
  securityCode: null,
  e2eeQueue: Promise.resolve(), // key events are handled one after another, in order
};
window.conf = state; // for people and tests poking at the page

// -- small helpers --------------------------------------------------------------------------------------

const ICONS = {
  mic: '<path d="M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z"/><path d="M5 11a7 7 0 0 0 14 0M12 18v3"/>',
  micoff: '<path d="M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z"/><path d="M5 11a7 7 0 0 0 14 0M12 18v3M4 4l16 16"/>',
  camera: '<path d="M3 7h12v10H3zM15 10l6-3v10l-6-3"/>',
  screen: '<path d="M3 4h18v12H3zM8 20h8M12 16v4"/>',
  hand: '<path d="M8 13V6a1.5 1.5 0 0 1 3 0v5M11 11V4.5a1.5 1.5 0 0 1 3 0V11M14 11V6a1.5 1.5 0 0 1 3 0v8a7 7 0 0 1-7 7h-.5a5 5 0 0 1-4-2L3.8 15a1.6 1.6 0 0 1 2.4-2L8 15"/>',
  smile: '<circle cx="12" cy="12" r="9"/><path d="M8.5 14.5a4.5 4.5 0 0 0 7 0M9 9.5h.01M15 9.5h.01"/>',
  speaker: '<path d="M3 4h18v11H3zM3 18h5v3H3zM10 18h4v3h-4zM16 18h5v3h-5z"/>',
  grid: '<path d="M4 4h7v7H4zM13 4h7v7h-7zM4 13h7v7H4zM13 13h7v7h-7z"/>',
  chat: '<path d="M4 5h16v10H9l-5 4z"/>',
  people: '<circle cx="9" cy="8" r="3"/><path d="M3 20a6 6 0 0 1 12 0M16 5a3 3 0 0 1 0 6M18 14a5 5 0 0 1 3 6"/>',
  leave: '<path d="M10 17l-5-5 5-5M5 12h11M14 4h5v16h-5"/>',
};

function icon(name) {
  return `<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round"` +
    ` stroke-linejoin="round" aria-hidden="true" focusable="false">${ICONS[name] || ""}</svg>`;
}

function drawIcons(root = document) {
  for (const el of root.querySelectorAll("[data-icon]")) el.innerHTML = icon(el.dataset.icon);
}

function leader() {
  return LEADERS.includes(state.role);
}

function initials(name) {
  const words = name.split(/[\s._-]+/).filter(Boolean);
  return ((words[0]?.[0] || "?") + (words[1]?.[0] || "")).toUpperCase();
}

function ordinal(n) {
  return `${n}${n % 10 === 1 && n % 100 !== 11 ? "st" : n % 10 === 2 && n % 100 !== 12 ? "nd" :
    n % 10 === 3 && n % 100 !== 13 ? "rd" : "th"}`;
}

// -- the join form --------------------------------------------------------------------------------------

function fillFromLink() {
  const params = new URLSearchParams(location.search);
  for (const key of ["meeting", "name", "passcode"]) {
    if (params.get(key)) $(key).value = params.get(key);
  }
  const ready = Boolean(params.get("meeting") && params.get("passcode"));
  if (ready && !$("name").value) $("name").value = `guest-${Math.random().toString(36).slice(2, 6)}`;
  return ready; // an invite with the passcode: join at once (after the device prompt)
}

function formError(text) {
  $("form-error").textContent = text;
  $("join-button").disabled = false;
}

function canForward() {
  const has = (kind, mime) =>
    (RTCRtpSender.getCapabilities(kind)?.codecs || []).some((c) => c.mimeType.toLowerCase() === mime) &&
    (RTCRtpReceiver.getCapabilities(kind)?.codecs || []).some((c) => c.mimeType.toLowerCase() === mime);
  if (!has("video", "video/h264"))
    return "This browser cannot send and receive H.264 video, which conf meetings carry (no transcoding). " +
      "Try Chromium, Chrome, Edge or Safari, or Firefox with its OpenH264 plugin.";
  if (!has("audio", "audio/opus")) return "This browser has no Opus audio, which conf meetings carry.";
  return null;
}

async function join(event) {
  event?.preventDefault();
  $("join-button").disabled = true;
  $("form-error").textContent = "";
  if (!window.RTCPeerConnection) return formError("This browser has no WebRTC.");
  const refusal = canForward();
  if (refusal) return formError(refusal);
  if (!$("meeting").value.trim() || !$("name").value.trim())
    return formError("Enter the meeting ID and your name.");
  if (!state.local) {
    try {
      state.local = await navigator.mediaDevices.getUserMedia({
        audio: true,
        video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } },
      });
    } catch (err) {
      try {
        state.local = await navigator.mediaDevices.getUserMedia({ audio: true });
        setStatus("No camera: joining with the microphone only.");
      } catch (err2) {
        state.local = new MediaStream();
        setStatus(`No camera or microphone (${err2.name}): you can watch, listen and chat.`);
      }
    }
  }
  if (!state.ring && canEncrypt()) state.ring = await E2ee.KeyRing.create().catch(() => null);
  state.joining = true;
  if (state.ws && state.ws.readyState === WebSocket.OPEN) sendJoin();
  else connect();
}

function sendJoin() {
  send({
    type: "join",
    meeting: $("meeting").value.trim(),
    name: $("name").value.trim(),
    passcode: $("passcode").value,
    // Sent with every join, as conf clients do: a plain meeting ignores it, an encrypted one needs it.
    ...(state.ring ? { e2ee_key: state.ring.publicText } : {}),
  });
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/ws`);
  state.ws = ws;
  ws.onmessage = (e) => handle(JSON.parse(e.data)).catch((err) => console.error(err));
  ws.onclose = () => {
    if (state.ws !== ws) return;
    state.ws = null;
    if (state.me && !state.ended) endView("The connection to the server was lost.");
    else if (!state.me && state.joining) formError("Cannot reach the conf server.");
  };
}

function send(message) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(message));
}

// -- what the server says -------------------------------------------------------------------------------

function snapshot(m) {
  state.participants = new Map(m.participants.map((p) => [p.name, { sharing: [], forbidden: [], ...p }]));
  state.locked = Boolean(m.locked);
  state.meetingForbidden = m.forbidden || [];
  if ("waiting_room" in m) state.waitingRoom = Boolean(m.waiting_room);
  if (Array.isArray(m.waiting)) state.waiting = [...m.waiting];
}

function setRole(role) {
  state.role = role;
  if (!leader()) state.waiting = [];
}

async function handle(m) {
  switch (m.type) {
    case "web_ready":
      state.iceServers = m.ice_servers || [];
      state.requests = new Set(m.requests || []);
      if (state.joining) sendJoin();
      break;
    case "web_ice": // every STUN and TURN server, with this page's TURN credentials: sent once admitted
      state.iceServers = m.ice_servers || [];
      break;
    case "waiting":
      setStatus("Waiting for the host to let you in...");
      break;
    case "denied":
      state.joining = false;
      formError(`You were not let in${m.by ? ` by ${m.by}` : ""}.`);
      break;
    case "joined":
      state.joining = false;
      state.me = m.name;
      state.meeting = m.meeting;
      setRole(m.role);
      snapshot(m);
      $("join-form").hidden = true;
      $("meeting-view").hidden = false;
      $("meeting-label").textContent = `meeting ${m.meeting}`;
      setStatus("");
      history.replaceState(null, "", `?meeting=${encodeURIComponent(m.meeting)}`);
      note(`You joined as ${m.role}.`);
      if (m.e2ee) startE2ee(m);
      render();
      $("toggle-audio").focus();
      break;
    case "web_offer":
      await answer(m);
      break;
    case "web_tracks":
      state.tracks = m.tracks;
      state.worker?.postMessage({ type: "tracks", tracks: m.tracks });
      renderTiles();
      break;
    case "participants":
      snapshot(m);
      render();
      break;
    case "participant_joined":
      state.participants.set(m.name, { name: m.name, role: m.role, sharing: [], forbidden: [] });
      note(`${m.name} joined.`);
      if (state.e2ee) e2ee(async () => rekeyed(await state.ring.peerJoined(m.name, m.key)));
      render();
      break;
    case "participant_left":
      state.participants.delete(m.name);
      state.hands = state.hands.filter((n) => n !== m.name);
      state.levels.delete(m.name);
      if (state.speaker === m.name) state.speaker = null;
      if (state.pinned === m.name) state.pinned = null;
      note(`${m.name} left (${m.reason}).`);
      if (state.e2ee) e2ee(async () => rekeyed(await state.ring.peerLeft(m.name)));
      render();
      break;
    case "role_changed":
      if (state.participants.has(m.name)) state.participants.get(m.name).role = m.role;
      if (m.name === state.me) setRole(m.role);
      note(`${m.name} is now ${m.role}${m.by ? ` (by ${m.by})` : ""}.`);
      render();
      break;
    case "permission_changed":
      note(`${m.what} ${m.allowed ? "allowed" : "forbidden"} for ${m.name || "members"} by ${m.by}.`);
      send({ type: "who" }); // the snapshot says who may do what now
      break;
    case "share_started":
      if (m.name === state.me) state.worker?.postMessage({ type: "ssrc", kind: m.kind, ssrc: m.ssrc });
      sharing(m.name, m.kind, true);
      break;
    case "e2ee_key":
      if (state.e2ee) e2ee(() => state.ring.open(m.from, m.box));
      break;
    case "share_stopped":
      sharing(m.name, m.kind, false);
      if (m.name === state.me && m.reason !== "stopped") {
        stopSending(m.kind, false);
        note(`Your ${kindName(m.kind)} was stopped: ${m.reason}.`, "note", true);
      }
      break;
    case "meeting_locked":
      state.locked = m.locked;
      note(`The meeting was ${m.locked ? "locked" : "unlocked"} by ${m.by}.`);
      renderPeople();
      break;
    case "waiting_room":
      state.waitingRoom = Boolean(m.enabled);
      state.waiting = [...(m.waiting || [])];
      renderPeople();
      break;
    case "waiting_room_changed":
      state.waitingRoom = Boolean(m.enabled);
      if (!m.enabled) state.waiting = [];
      note(`The waiting room was turned ${m.enabled ? "on" : "off"} by ${m.by}.`);
      renderPeople();
      break;
    case "waiting_joined":
      if (!state.waiting.includes(m.name)) state.waiting.push(m.name);
      note(`${m.name} is waiting to be let in.`, "note", true);
      renderPeople();
      break;
    case "waiting_left":
      state.waiting = state.waiting.filter((n) => n !== m.name);
      renderPeople();
      break;
    case "chat":
      chatLine(m.from, m.text, m.private ? `to ${m.to}` : "");
      break;
    case "error":
      if (!state.me) {
        state.joining = false;
        formError(m.message);
      } else note(`${m.message}`, "error");
      if (typeof m.id === "string" && m.id.startsWith("publish-")) {
        const kind = m.id.slice("publish-".length);
        if (kind in state.sending) stopSending(kind, false); // refused (forbidden): stop sending it
      }
      break;
    case "meeting_closed":
      endView(`The meeting was ended${m.by ? ` by ${m.by}` : ""}.`);
      break;
    case "kicked":
      endView(`You were removed from the meeting by ${m.by}.`);
      break;
    case "left":
      endView("You left the meeting.");
      break;
    case "disconnected":
      if (state.me) endView(`Disconnected from the server: ${m.reason}.`);
      else formError(`Disconnected from the server: ${m.reason}.`);
      break;
    default:
      if (FEATURES[m.type]) FEATURES[m.type](m);
  }
}

// Meeting features beyond the core protocol: each event's handler, filled in by the features below.
const FEATURES = {};

// -- WebRTC -----------------------------------------------------------------------------------------------

async function answer(offer) {
  if (!state.pc) {
    const pc = new RTCPeerConnection({ iceServers: state.iceServers });
    state.pc = pc;
    pc.ontrack = (e) => {
      // In an encrypted meeting each received track goes through the media worker to be decrypted.
      if (state.e2ee && !e.receiver.transform)
        e.receiver.transform = new RTCRtpScriptTransform(state.worker, { side: "receive", mid: e.transceiver.mid });
      renderTiles();
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed") note("The media connection failed (firewall? try --ice-server).", "error");
    };
  }
  const pc = state.pc;
  state.tracks = offer.tracks;
  state.worker?.postMessage({ type: "tracks", tracks: offer.tracks });
  await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
  const first = !state.answered;
  if (first) {
    const own = ownTransceivers();
    for (const slot of SLOTS) own[slot].direction = "sendonly";
    if (state.e2ee) { // what the page sends is sealed in the media worker first
      for (const kind of SLOTS) own[kind].sender.transform = new RTCRtpScriptTransform(state.worker, { side: "send", kind });
    }
    await own.audio.sender.replaceTrack(state.local.getAudioTracks()[0] || null);
    await own.video.sender.replaceTrack(state.local.getVideoTracks()[0] || null);
  }
  await pc.setLocalDescription(await pc.createAnswer());
  await gathered(pc);
  send({ type: "web_answer", sdp: pc.localDescription.sdp });
  state.answered = true;
  if (first) {
    if (state.local.getAudioTracks().length) publish("audio");
    if (state.local.getVideoTracks().length) publish("video");
  }
  renderTiles();
}

function ownTransceivers() {
  const list = state.pc.getTransceivers();
  return { audio: list[0], video: list[1], screen: list[2] };
}

function gathered(pc) {
  // The server's WebRTC does not take candidates one by one: the answer carries them all.
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", done);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 5000);
  });
}

function publish(kind) {
  state.sending[kind] = true;
  send({ type: "publish", kind, id: `publish-${kind}` }); // a refusal names this id
  render();
}

async function stopSending(kind, tell = true) {
  if (!state.pc) return;
  await ownTransceivers()[kind].sender.replaceTrack(null);
  if (kind === "screen" && state.screen) {
    for (const t of state.screen.getTracks()) t.stop();
    state.screen = null;
  }
  if (tell && state.sending[kind]) send({ type: "unpublish", kind });
  state.sending[kind] = false;
  render();
}

async function toggle(kind) {
  if (!state.pc) return;
  if (state.sending[kind]) return stopSending(kind);
  let track = null;
  if (kind === "screen") {
    try {
      state.screen = await navigator.mediaDevices.getDisplayMedia({ video: true });
    } catch (err) {
      return note(`Screen sharing was not started: ${err.name}.`, "error");
    }
    track = state.screen.getVideoTracks()[0];
    track.onended = () => stopSending("screen");
  } else {
    track = kind === "audio" ? state.local.getAudioTracks()[0] : state.local.getVideoTracks()[0];
    if (!track) return note(`There is no ${kindName(kind)}.`, "error");
  }
  await ownTransceivers()[kind].sender.replaceTrack(track);
  publish(kind);
}

function kindName(kind) {
  return { audio: "microphone", video: "camera", screen: "screen" }[kind] || kind;
}

// -- end-to-end encryption -------------------------------------------------------------------------------

// Whether this browser can take part in an end-to-end encrypted meeting: Encoded Transform in a worker
// and X25519 in WebCrypto (KeyRing.create fails without it).
function canEncrypt() {
  return typeof RTCRtpScriptTransform === "function" && typeof Worker === "function" && window.isSecureContext;
}

function e2ee(job) {
  state.e2eeQueue = state.e2eeQueue.then(job).then(showCode).catch((err) => note(`${err.message || err}`, "error"));
}

function rekeyed(message) {
  if (message) send(message);
}

// In an encrypted meeting: the media worker at once (the offer that follows `joined` needs it), then the
// keys, in the order of the key events.
function startE2ee(m) {
  state.e2ee = true;
  const ring = state.ring;
  const worker = new Worker("/sframe-worker.js");
  state.worker = worker;
  worker.postMessage({ type: "tracks", tracks: state.tracks });
  const stats = new Map();
  worker.onmessage = (e) => stats.get(e.data.id)?.(e.data.counts);
  let asked = 0;
  window.confE2ee = () => new Promise((resolve) => {
    asked += 1;
    stats.set(asked, resolve);
    worker.postMessage({ type: "stats", id: asked });
  });
  ring.onsend = (kid, base) => worker.postMessage({ type: "send", kid, base });
  ring.onreceive = (name, kid, base) => worker.postMessage({ type: "receive", name, kid, base });
  ring.onforget = (name, kids) => worker.postMessage({ type: "forget", name, kids });
  e2ee(async () => {
    rekeyed(await ring.start(m.meeting, m.name, m.participants));
    for (const why of ring.unusable) note(why, "error");
  });
  note("This meeting is end-to-end encrypted: compare the security code aloud.", "note", true);
}

async function showCode() {
  if (!state.e2ee) return;
  state.securityCode = await state.ring.securityCode();
  $("security").hidden = false;
  $("security-code").textContent = state.securityCode;
}

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

// -- the active speaker: audio levels from WebRTC's statistics ---------------------------------------------

const energy = new Map(); // stats id -> [totalAudioEnergy, totalSamplesDuration]

function level(id, s) {
  const before = energy.get(id);
  energy.set(id, [s.totalAudioEnergy || 0, s.totalSamplesDuration || 0]);
  if (before && s.totalSamplesDuration > before[1]) {
    return Math.sqrt(Math.max(0, (s.totalAudioEnergy - before[0]) / (s.totalSamplesDuration - before[1])));
  }
  return s.audioLevel || 0;
}

let loudest = { name: null, times: 0 };

async function readLevels() {
  const pc = state.pc;
  if (!pc || !state.me) return;
  const levels = new Map();
  const report = await pc.getStats();
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      const info = state.tracks[s.mid];
      if (info && info.ssrc !== null) levels.set(info.name, Math.max(levels.get(info.name) || 0, level(s.id, s)));
    }
    if (s.type === "media-source" && s.kind === "audio" && state.sending.audio) {
      levels.set(state.me, level(s.id, s));
    }
  });
  state.levels = levels;
  let top = null;
  for (const [name, value] of levels) {
    if (value >= SPEAKING && (top === null || value > levels.get(top))) top = name;
  }
  // A new speaker takes over after two readings in a row, so that a cough does not flip the view.
  if (top && top !== state.speaker) {
    loudest = loudest.name === top ? { name: top, times: loudest.times + 1 } : { name: top, times: 1 };
    if (loudest.times >= 2) {
      state.speaker = top;
      renderTiles();
    }
  } else loudest = { name: null, times: 0 };
}

setInterval(() => readLevels().catch(() => {}), LEVEL_EVERY);

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

// The list of people, with the host's and admins' controls for each.
function renderPeople() {
  // The list is drawn anew on every change: a keyboard user keeps the button they were on.
  const focused = document.activeElement;
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
  if (keep && !$("panel-people").contains(document.activeElement)) {
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

// -- figures and geometry, for people and tests ----------------------------------------------------------

window.confStats = async function () {
  const out = {
    framesDecoded: 0,
    audioPacketsReceived: 0,
    audioSamplesReceived: 0,
    videoPacketsSent: 0,
    audioPacketsSent: 0,
  };
  if (!state.pc) return out;
  const report = await state.pc.getStats();
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") out.framesDecoded += s.framesDecoded || 0;
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      out.audioPacketsReceived += s.packetsReceived || 0;
      out.audioSamplesReceived += (s.totalSamplesReceived || 0) - (s.concealedSamples || 0); // not made up
    }
    if (s.type === "outbound-rtp" && s.kind === "video") out.videoPacketsSent += s.packetsSent || 0;
    if (s.type === "outbound-rtp" && s.kind === "audio") out.audioPacketsSent += s.packetsSent || 0;
  });
  return out;
};

// -- wiring -------------------------------------------------------------------------------------------------

drawIcons();
$("join-form").addEventListener("submit", join);
$("chat-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("chat-input").value;
  if (!text.trim()) return;
  send({ type: "chat", text });
  $("chat-input").value = "";
});
$("toggle-audio").onclick = () => toggle("audio");
$("toggle-video").onclick = () => toggle("video");
$("toggle-screen").onclick = () => toggle("screen");
$("toggle-view").onclick = () => {
  state.view = state.view === "speaker" ? "grid" : "speaker";
  if (state.view === "grid") state.pinned = null;
  render();
};
$("toggle-chat").onclick = () => openPanel("chat");
$("toggle-people").onclick = () => openPanel("people");
for (const b of document.querySelectorAll("[data-close]")) b.onclick = () => openPanel(b.dataset.close);
$("toggle-lock").onclick = () => send({ type: state.locked ? "unlock" : "lock" });
$("toggle-waiting").onclick = () => send({ type: "set_waiting_room", enabled: !state.waitingRoom });
$("end").onclick = () => send({ type: "end" });
$("leave").onclick = () => send({ type: "leave" });
$("rejoin").onclick = () => location.reload();
document.addEventListener("keydown", (e) => {
  if (e.key !== "Escape") return;
  if (!$("reaction-menu").hidden) closeReactions();
  else if (state.panel) openPanel(state.panel);
});
new ResizeObserver(() => layout()).observe($("videos"));
if (!navigator.mediaDevices?.getUserMedia) {
  formError("This page needs HTTPS (or localhost) for the camera and microphone.");
}

function closeReactions() {
  $("reaction-menu").hidden = true;
  $("toggle-reactions").setAttribute("aria-expanded", "false");
  $("toggle-reactions").focus();
}

if (fillFromLink()) join();
