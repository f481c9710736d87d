// conf in the browser: join a meeting over WebRTC.
//
// The page speaks the conf protocol (docs/protocol.md) over a WebSocket to the server's web service,
// which takes part in the meeting for it. The server offers the WebRTC session (web_offer) and the page
// answers (web_answer); the first three m-lines are the page's microphone, camera and screen, the
// others carry the meeting's tracks, described by MID in `tracks`.
"use strict";

const $ = (id) => document.getElementById(id);
const SLOTS = ["audio", "video", "screen"]; // the page's own send slots, in m-line order

const state = {
  ws: null,
  pc: null,
  iceServers: [],
  me: null,
  role: "member",
  meeting: null,
  participants: new Map(), // name -> {role, sharing, forbidden}
  tracks: {}, // mid -> {name, kind, ssrc}
  local: null, // MediaStream from the camera and microphone
  screen: null, // MediaStream of a shared screen
  sending: { audio: false, video: false, screen: false },
  locked: false,
  ended: null,
  answered: false,
  joining: false,
  token: null, // an access token from the link (?token=): joins without the passcode
};
window.conf = state; // for people and tests poking at the page

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
    showLocal();
  }
  state.joining = true;
  if (state.ws && state.ws.readyState === WebSocket.OPEN) sendJoin();
  else connect();
}

function sendJoin() {
  const request = { type: "join", meeting: $("meeting").value.trim(), name: $("name").value.trim() };
  if (state.token) request.token = state.token;
  else request.passcode = $("passcode").value;
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

async function handle(m) {
  switch (m.type) {
    case "web_ready":
      state.iceServers = m.ice_servers || [];
      if (state.joining) sendJoin();
      break;
    case "web_ice": // every STUN and TURN server, with this page's TURN credentials: sent once admitted
      state.iceServers = m.ice_servers || [];
      break;
    case "joined":
      state.joining = false;
      state.me = m.name;
      state.meeting = m.meeting;
      state.role = m.role;
      state.locked = Boolean(m.locked);
      state.participants = new Map(m.participants.map((p) => [p.name, p]));
      $("join-form").hidden = true;
      $("meeting-view").hidden = false;
      $("meeting-label").textContent = `meeting ${m.meeting}`;
      history.replaceState(null, "", `?meeting=${encodeURIComponent(m.meeting)}`);
      note(`You joined as ${m.role}.`);
      renderParticipants();
      break;
    case "web_offer":
      await answer(m);
      break;
    case "web_tracks":
      state.tracks = m.tracks;
      renderTiles();
      break;
    case "participants":
      state.participants = new Map(m.participants.map((p) => [p.name, p]));
      state.locked = Boolean(m.locked);
      renderParticipants();
      break;
    case "participant_joined":
      state.participants.set(m.name, { name: m.name, role: m.role, sharing: [] });
      note(`${m.name} joined.`);
      renderParticipants();
      break;
    case "participant_left":
      state.participants.delete(m.name);
      note(`${m.name} left (${m.reason}).`);
      renderParticipants();
      break;
    case "role_changed":
      if (state.participants.has(m.name)) state.participants.get(m.name).role = m.role;
      if (m.name === state.me) state.role = m.role;
      note(`${m.name} is now ${m.role}${m.by ? ` (by ${m.by})` : ""}.`);
      renderParticipants();
      break;
    case "permission_changed":
      note(`${m.what} ${m.allowed ? "allowed" : "forbidden"} for ${m.name || "members"} by ${m.by}.`);
      send({ type: "who" });
      break;
    case "share_started":
      sharing(m.name, m.kind, true);
      break;
    case "share_stopped":
      sharing(m.name, m.kind, false);
      if (m.name === state.me && m.reason !== "stopped") {
        stopSending(m.kind, false);
        note(`Your ${m.kind} was stopped: ${m.reason}.`);
      }
      break;
    case "meeting_locked":
      state.locked = m.locked;
      note(`The meeting was ${m.locked ? "locked" : "unlocked"} by ${m.by}.`);
      renderParticipants();
      break;
    case "chat":
      chatLine(m.from, m.text, m.private ? `to ${m.to}` : "");
      break;
    case "error":
      if (!state.me) {
        state.joining = false;
        formError(m.message);
      }
      else note(`${m.message}`, "error");
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
  }
}

// -- WebRTC -----------------------------------------------------------------------------------------------

async function answer(offer) {
  if (!state.pc) {
    const pc = new RTCPeerConnection({ iceServers: state.iceServers });
    state.pc = pc;
    pc.ontrack = () => renderTiles();
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed") note("The media connection failed (firewall? try --ice-server).", "error");
    };
  }
  const pc = state.pc;
  state.tracks = offer.tracks;
  await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
  const first = !state.answered;
  if (first) {
    const own = ownTransceivers();
    for (const slot of SLOTS) own[slot].direction = "sendonly";
    const audio = state.local.getAudioTracks()[0] || null;
    const video = state.local.getVideoTracks()[0] || null;
    await own.audio.sender.replaceTrack(audio);
    await own.video.sender.replaceTrack(video);
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
  renderButtons();
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
  renderButtons();
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
    if (!track) return note(`There is no ${kind === "audio" ? "microphone" : "camera"}.`, "error");
  }
  await ownTransceivers()[kind].sender.replaceTrack(track);
  publish(kind);
}

// -- the view ---------------------------------------------------------------------------------------------

function setStatus(text) {
  $("status").textContent = text;
}

function note(text, cls = "note") {
  const li = document.createElement("li");
  li.className = cls;
  li.textContent = text;
  $("chat-log").append(li);
  li.scrollIntoView({ block: "end" });
}

function chatLine(from, text, extra) {
  const li = document.createElement("li");
  const who = document.createElement("span");
  who.className = "from";
  who.textContent = extra ? `${from} (${extra})` : from;
  li.append(who, document.createTextNode(text));
  $("chat-log").append(li);
  li.scrollIntoView({ block: "end" });
}

function sharing(name, kind, on) {
  const p = state.participants.get(name);
  if (!p) return;
  const now = new Set(p.sharing || []);
  if (on) now.add(kind);
  else now.delete(kind);
  p.sharing = [...now];
  renderParticipants();
}

function showLocal() {
  if (!state.local.getVideoTracks().length) return;
  const tile = tileFor("local", true);
  tile.querySelector("video").srcObject = new MediaStream(state.local.getVideoTracks());
  tile.querySelector("span").textContent = "you";
}

function tileFor(key, local = false) {
  let tile = document.querySelector(`.tile[data-key="${key}"]`);
  if (!tile) {
    tile = document.createElement("div");
    tile.className = local ? "tile local" : "tile";
    tile.dataset.key = key;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.muted = true; // sound plays through the <audio> elements
    tile.append(video, document.createElement("span"));
    $("videos").append(tile);
  }
  return tile;
}

function renderTiles() {
  if (!state.pc) return;
  const seen = new Set(["local"]);
  for (const t of state.pc.getTransceivers().slice(SLOTS.length)) {
    const info = state.tracks[t.mid];
    const track = t.receiver.track;
    if (!info || info.ssrc === null || !track) continue;
    const key = `mid-${t.mid}`;
    if (track.kind === "audio") {
      let audio = document.querySelector(`audio[data-key="${key}"]`);
      if (!audio) {
        audio = document.createElement("audio");
        audio.autoplay = true;
        audio.dataset.key = key;
        audio.srcObject = new MediaStream([track]);
        document.body.append(audio);
      }
      continue;
    }
    seen.add(key);
    const tile = tileFor(key);
    const video = tile.querySelector("video");
    if (!video.srcObject) video.srcObject = new MediaStream([track]);
    tile.querySelector("span").textContent = `${info.name} (${info.kind === "screen" ? "screen" : "camera"})`;
  }
  for (const tile of document.querySelectorAll(".tile")) if (!seen.has(tile.dataset.key)) tile.remove();
}

function renderButtons() {
  $("toggle-audio").textContent = state.sending.audio ? "Mute" : "Unmute";
  $("toggle-video").textContent = state.sending.video ? "Stop camera" : "Start camera";
  $("toggle-screen").textContent = state.sending.screen ? "Stop sharing" : "Share screen";
  const leader = state.role === "host" || state.role === "admin";
  for (const el of document.querySelectorAll(".host-only")) el.hidden = !leader;
  $("toggle-lock").textContent = state.locked ? "Unlock" : "Lock";
}

function button(label, message) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "small";
  b.textContent = label;
  b.onclick = () => send(message);
  return b;
}

function renderParticipants() {
  const list = $("participants");
  list.replaceChildren();
  const leader = state.role === "host" || state.role === "admin";
  for (const [name, p] of state.participants) {
    const li = document.createElement("li");
    const who = document.createElement("span");
    who.textContent = name === state.me ? `${name} (you)` : name;
    const role = document.createElement("span");
    role.className = "role";
    const shares = (p.sharing || []).join(", ");
    role.textContent = `${p.role}${shares ? ` · ${shares}` : ""}`;
    li.append(who, role);
    if (leader && name !== state.me && p.role !== "host") {
      if (state.role === "host") {
        li.append(p.role === "admin"
          ? button("make member", { type: "set_role", name, role: "member" })
          : button("make admin", { type: "set_role", name, role: "admin" }));
        li.append(button("make host", { type: "set_role", name, role: "host" }));
      }
      li.append(button("mute", { type: "forbid", what: "audio", name }));
      li.append(button("allow audio", { type: "permit", what: "audio", name }));
      li.append(button("kick", { type: "kick", name }));
    }
    list.append(li);
  }
  renderButtons();
}

function endView(text) {
  state.ended = text;
  if (state.pc) state.pc.close();
  state.pc = null;
  $("meeting-view").hidden = true;
  $("join-form").hidden = true;
  $("ended").hidden = false;
  $("ended-text").textContent = text;
  if (state.ws) state.ws.close();
}

// -- figures, for people and tests --------------------------------------------------------------------------

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
$("toggle-lock").onclick = () => send({ type: state.locked ? "unlock" : "lock" });
$("end").onclick = () => send({ type: "end" });
$("leave").onclick = () => send({ type: "leave" });
$("rejoin").onclick = () => location.reload();
if (!navigator.mediaDevices?.getUserMedia) {
  formError("This page needs HTTPS (or localhost) for the camera and microphone.");
}
if (fillFromLink()) join();
