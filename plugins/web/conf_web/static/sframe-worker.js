// The page's media worker in an end-to-end encrypted meeting: the RTCRtpScriptTransforms of app.js run
// here (Chromium's Encoded Transform). It encrypts what the page sends (Opus frames, and H.264 frames
// packetised here: h264.js) and decrypts the sound it receives with SFrame (sframe.js), under the keys
// the page's keyring (e2ee.js) posts to it.
//
// conf binds each SFrame to 11 bytes of its RTP header (M << 7 | PT, sequence number, timestamp, SSRC).
// A page sees frames, not packets, and the server rewrites the RTP headers on the way to and from a
// browser; so these 11 bytes travel in front of each SFrame between the page and the server's web
// service, which puts them back into (and takes them from) the RTP header of the meeting's packets.
"use strict";
importScripts("/sframe.js", "/h264.js");

const PAYLOAD_TYPES = { audio: 111, video: 96, screen: 96 }; // conf's Opus and H.264
const META = 11;
const PIECE = 800; // bytes of H.264 in one RTP payload: with its SFrame and framing, one browser packet
const sending = { key: null, ctr: 0 };
const tracks_out = { // our own tracks: conf SSRC (from share_started) and RTP sequence numbers
  audio: { ssrc: 0, seq: Math.floor(Math.random() * 65536) },
  video: { ssrc: 0, seq: Math.floor(Math.random() * 65536) },
  screen: { ssrc: 0, seq: Math.floor(Math.random() * 65536) },
};
const keys = new Map(); // kid -> {name, k}
const order = new Map(); // name -> its KIDs, oldest first
const inUse = new Map(); // name -> KID of its newest frame
let tracks = {}; // mid -> {name, kind, ssrc}
const counts = { encrypted: 0, decrypted: 0, noKey: 0, failed: 0, refused: 0 };

function metadata(marker, pt, seq, ts, ssrc) {
  const out = new Uint8Array(META);
  const view = new DataView(out.buffer);
  view.setUint8(0, (marker ? 0x80 : 0) | pt);
  view.setUint16(1, seq);
  view.setUint32(3, ts >>> 0);
  view.setUint32(7, ssrc >>> 0);
  return out;
}

function forget(kid) {
  const entry = keys.get(kid);
  if (!entry) return;
  keys.delete(kid);
  order.set(entry.name, (order.get(entry.name) || []).filter((k) => k !== kid));
}

onmessage = async (event) => {
  const m = event.data;
  if (m.type === "send") {
    const k = await SFrame.deriveKey(m.kid, m.base);
    Object.assign(sending, { key: k, ctr: 0 });
  } else if (m.type === "receive") {
    const k = await SFrame.deriveKey(m.kid, m.base);
    keys.set(m.kid, { name: m.name, k });
    order.set(m.name, [...(order.get(m.name) || []).filter((x) => x !== m.kid), m.kid]);
  } else if (m.type === "forget") {
    for (const kid of m.kids) forget(kid);
  } else if (m.type === "tracks") {
    tracks = m.tracks;
  } else if (m.type === "ssrc") {
    tracks_out[m.kind].ssrc = m.ssrc;
  } else if (m.type === "stats") {
    postMessage({ type: "stats", id: m.id, counts });
  }
};

async function encrypt(frame, controller, kind) {
  const k = sending.key;
  const out = tracks_out[kind];
  if (!k || !out.ssrc) return; // no key, or not published yet: nothing leaves in the clear
  const ts = frame.getMetadata().rtpTimestamp ?? frame.timestamp;
  if (kind === "audio") {
    const ctr = sending.ctr++;
    out.seq = (out.seq + 1) & 0xffff;
    const meta = metadata(false, PAYLOAD_TYPES.audio, out.seq, ts, out.ssrc);
    const sealed = await SFrame.encrypt(k, ctr, new Uint8Array(frame.data), meta);
    frame.data = SFrame.concat(meta, sealed).buffer;
  } else {
    // conf encrypts each H.264 RTP payload: packetise the frame here (RFC 6184, as conf does), seal
    // each payload, and hand Chromium's H.264 packetiser one NAL unit per sealed payload, escaped
    // against start codes, which the server's web service unwraps (conf_web.media.SealedVideo).
    const payloads = H264.packetize(new Uint8Array(frame.data), PIECE);
    const units = [];
    for (let i = 0; i < payloads.length; i++) {
      const ctr = sending.ctr++;
      out.seq = (out.seq + 1) & 0xffff;
      const meta = metadata(i === payloads.length - 1, PAYLOAD_TYPES[kind], out.seq, ts, out.ssrc);
      units.push(H264.wrap(SFrame.concat(meta, await SFrame.encrypt(k, ctr, payloads[i], meta))));
    }
    frame.data = SFrame.concat(...units).buffer;
  }
  counts.encrypted++;
  controller.enqueue(frame);
}

function fail(what) {
  counts[what]++;
  return null;
}

// The payload of one sealed unit (11 bytes of metadata, then an SFrame) on `track`, or null.
async function open(unit, track) {
  if (unit.length <= META) return fail("failed");
  const meta = unit.subarray(0, META);
  const sealed = unit.subarray(META);
  if (new DataView(meta.buffer, meta.byteOffset).getUint32(7) !== track.ssrc) return fail("refused");
  let header;
  try {
    header = SFrame.parseHeader(sealed);
  } catch (err) {
    return fail("failed");
  }
  const entry = keys.get(header.kid);
  if (!entry) return fail("noKey");
  if (entry.name !== track.name) return fail("refused"); // someone else's key on this track
  let plain;
  try {
    plain = await SFrame.decrypt(entry.k, sealed, meta);
  } catch (err) {
    return fail("failed");
  }
  if (inUse.get(entry.name) !== header.kid) { // the sender has moved on from its older keys
    inUse.set(entry.name, header.kid);
    const held = order.get(entry.name) || [];
    for (const old of held.slice(0, held.indexOf(header.kid))) forget(old);
  }
  counts.decrypted++;
  return plain;
}

async function decrypt(frame, controller, mid) {
  const track = tracks[mid];
  if (!track) return void counts.failed++;
  const data = new Uint8Array(frame.data);
  let plain;
  if (track.kind === "audio") plain = await open(data, track);
  else {
    const payloads = [];
    for (const unit of H264.sealedPayloads(data)) payloads.push(await open(unit, track));
    if (payloads.some(Boolean)) plain = H264.depacketize(payloads);
  }
  if (!plain) return;
  frame.data = plain.buffer.byteLength === plain.length ? plain.buffer : plain.slice().buffer;
  controller.enqueue(frame);
}

onrtctransform = (event) => {
  const transformer = event.transformer;
  const { side, mid, kind } = transformer.options;
  const transform = side === "send"
    ? (frame, controller) => encrypt(frame, controller, kind)
    : (frame, controller) => decrypt(frame, controller, mid);
  transformer.readable.pipeThrough(new TransformStream({ transform })).pipeTo(transformer.writable);
};
