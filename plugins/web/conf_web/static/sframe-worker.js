// The page's media worker in an end-to-end encrypted meeting: the RTCRtpScriptTransforms of app.js run
// here (Chromium's Encoded Transform). It encrypts the microphone's Opus frames and decrypts those it
// receives with SFrame (sframe.js), under the keys the page's keyring (e2ee.js) posts to it.
//
// conf binds each SFrame to 11 bytes of its RTP header (M << 7 | PT, sequence number, timestamp, SSRC).
// A page sees frames, not packets, and the server rewrites the RTP headers on the way to and from a
// browser; so these 11 bytes travel in front of each SFrame between the page and the server's web
// service, which puts them back into (and takes them from) the RTP header of the meeting's packets.
"use strict";
importScripts("/sframe.js");

const OPUS = 111;
const META = 11;
const sending = { key: null, ctr: 0, seq: Math.floor(Math.random() * 65536), ssrc: 0 };
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
    sending.ssrc = m.ssrc;
  } else if (m.type === "stats") {
    postMessage({ type: "stats", id: m.id, counts });
  }
};

async function encrypt(frame, controller) {
  const k = sending.key;
  if (!k || !sending.ssrc) return; // no key, or not published yet: nothing leaves in the clear
  const ctr = sending.ctr++;
  sending.seq = (sending.seq + 1) & 0xffff;
  const ts = frame.getMetadata().rtpTimestamp ?? frame.timestamp;
  const meta = metadata(false, OPUS, sending.seq, ts, sending.ssrc);
  const sealed = await SFrame.encrypt(k, ctr, new Uint8Array(frame.data), meta);
  frame.data = SFrame.concat(meta, sealed).buffer;
  counts.encrypted++;
  controller.enqueue(frame);
}

async function decrypt(frame, controller, mid) {
  const data = new Uint8Array(frame.data);
  const track = tracks[mid];
  if (data.length <= META || !track) return void counts.failed++;
  const meta = data.subarray(0, META);
  const sealed = data.subarray(META);
  if (new DataView(meta.buffer, meta.byteOffset).getUint32(7) !== track.ssrc) return void counts.refused++;
  let header;
  try {
    header = SFrame.parseHeader(sealed);
  } catch (err) {
    return void counts.failed++;
  }
  const entry = keys.get(header.kid);
  if (!entry) return void counts.noKey++;
  if (entry.name !== track.name) return void counts.refused++; // someone else's key on this track
  let plain;
  try {
    plain = await SFrame.decrypt(entry.k, sealed, meta);
  } catch (err) {
    return void counts.failed++;
  }
  if (inUse.get(entry.name) !== header.kid) { // the sender has moved on from its older keys
    inUse.set(entry.name, header.kid);
    const held = order.get(entry.name) || [];
    for (const old of held.slice(0, held.indexOf(header.kid))) forget(old);
  }
  frame.data = plain.buffer;
  counts.decrypted++;
  controller.enqueue(frame);
}

onrtctransform = (event) => {
  const transformer = event.transformer;
  const { side, mid } = transformer.options;
  const transform = side === "send" ? encrypt : (frame, controller) => decrypt(frame, controller, mid);
  transformer.readable.pipeThrough(new TransformStream({ transform })).pipeTo(transformer.writable);
};
