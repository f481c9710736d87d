// conf in the browser: a meeting page over WebRTC.
//
// The page speaks the conf protocol (docs/protocol.md) over a WebSocket to the server's web service,
// which takes part in the meeting for it. The server offers the WebRTC session (web_offer) and the page
// answers (web_answer); the first three m-lines are the page's microphone, camera and screen, the
// others carry the meeting's tracks, described by MID in `tracks`.
//
// The view (view.js): one tile per person (camera or initials, name, microphone, raised hand) and one per
// shared screen, in a grid sized to the stage or in a speaker view; the active speaker is outlined.
"use strict";

const $ = (id) => document.getElementById(id);
const SLOTS = ["audio", "video", "screen"]; // the page's own send slots, in m-line order
const LEADERS = ["host", "admin"];

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
  speaker: null, // the active speaker's name, as the server names it (active_speaker)
  panel: null, // "chat" | "people" | null
  unread: 0,
  ended: null,
  answered: false,
  joining: false,
  token: null, // an access token from the link (?token=): joins without the passcode
  requests: new Set(), // the message types the server takes (web_ready): features show only if there
  poll: null, // the open or last closed poll
  breakout: null, // (host and admins) the breakout plan: {rooms, open, assignments: Map}
  rooms: new Map(), // name -> breakout room, while rooms are open
  room: 0, // our breakout room (0: the main room)
  renaming: null, // (host) {name, value}: the person being renamed and the name typed so far
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

function tokenClaims(token) {
  // What an access token says (unchecked: the server checks it); {} if it does not read as one.
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const text = new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0)));
    const claims = JSON.parse(text);
    return claims && typeof claims === "object" ? claims : {};
  } catch (err) {
    return {};
  }
}

function fillFromLink() {
  const params = new URLSearchParams(location.search);
  for (const key of ["meeting", "name", "passcode"]) {
    if (params.get(key)) $(key).value = params.get(key);
  }
  if (params.get("token")) {
    // A personal link: the token names the person and (unless it opens any meeting) the meeting.
    state.token = params.get("token");
    const claims = tokenClaims(state.token);
    if (typeof claims.sub === "string") $("name").value = claims.sub;
    if (typeof claims.meeting === "string" && claims.meeting !== "*") $("meeting").value = claims.meeting;
    $("passcode").closest("label").hidden = true;
    return Boolean($("meeting").value && $("name").value);
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
  const request = { type: "join", meeting: $("meeting").value.trim(), name: $("name").value.trim() };
  if (state.token) request.token = state.token;
  else request.passcode = $("passcode").value;
  // Sent with every join, as conf clients do: a plain meeting ignores it, an encrypted one needs it.
  if (state.ring) request.e2ee_key = state.ring.publicText;
  send(request);
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
      state.participants.set(m.name, {
        name: m.name, role: m.role, sharing: [], forbidden: [], recorder: m.recorder === true,
      });
      note(`${m.name} joined.`);
      if (state.e2ee) e2ee(async () => rekeyed(await state.ring.peerJoined(m.name, m.key)));
      render();
      break;
    case "participant_left":
      state.participants.delete(m.name);
      state.hands = state.hands.filter((n) => n !== m.name);
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
    case "active_speaker": // the server's choice, from every audio track's level (RFC 6464)
      state.speaker = m.name;
      renderTiles();
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
    case "recording_started":
      note(`This meeting is being recorded by ${m.by}.`, "note", true);
      renderPeople();
      break;
    case "recording_stopped":
      note(`${m.by} stopped recording.`);
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

if (fillFromLink()) join();
