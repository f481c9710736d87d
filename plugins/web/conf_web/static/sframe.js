// SFrame (RFC 9605) as conf uses it on RTP payloads, in WebCrypto: cipher suite AES_128_GCM_SHA256_128,
// the header, the key schedule and a replay window (docs/protocol.md, "End-to-end encrypted media").
// Loaded by the page's media worker (sframe-worker.js); nothing here touches the page.
"use strict";

const SFrame = (() => {
  const SUITE = 4; // AES_128_GCM_SHA256_128
  const NK = 16;
  const NN = 12;
  const NT = 16;
  const WINDOW = 256; // counters more than this below the highest seen are refused
  const enc = new TextEncoder();

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  function big(value, length) {
    // `value` (a Number below 2^53, or a BigInt) as `length` big-endian bytes
    const out = new Uint8Array(length);
    let v = BigInt(value);
    for (let i = length - 1; i >= 0; i--) {
      out[i] = Number(v & 0xffn);
      v >>= 8n;
    }
    return out;
  }

  function minBytes(value) {
    let n = 1;
    while (BigInt(value) >> BigInt(8 * n) && n < 8) n++;
    return n;
  }

  function encodeHeader(kid, ctr) {
    let config = 0;
    const tail = [];
    if (kid < 8) config |= kid << 4;
    else {
      const n = minBytes(kid);
      config |= 0x80 | ((n - 1) << 4);
      tail.push(big(kid, n));
    }
    if (ctr < 8) config |= ctr;
    else {
      const n = minBytes(ctr);
      config |= 0x08 | (n - 1);
      tail.push(big(ctr, n));
    }
    return concat(new Uint8Array([config]), ...tail);
  }

  function parseHeader(data) {
    if (!data.length) throw new Error("SFrame is empty");
    const config = data[0];
    let at = 1;
    const read = (n) => {
      if (data.length < at + n) throw new Error("SFrame header is cut short");
      let v = 0;
      for (let i = 0; i < n; i++) v = v * 256 + data[at + i];
      at += n;
      return v;
    };
    const kid = config & 0x80 ? read(((config >> 4) & 7) + 1) : (config >> 4) & 7;
    const ctr = config & 0x08 ? read((config & 7) + 1) : config & 7;
    return { kid, ctr, length: at };
  }

  // The SFrame key and salt of a base key under `kid` (RFC 9605 section 4.4.2). HKDF with an empty
  // salt is HKDF with HashLen zero bytes of salt: HMAC pads its key with zeros either way.
  async function deriveKey(kid, baseKey) {
    const ikm = await crypto.subtle.importKey("raw", baseKey, "HKDF", false, ["deriveBits"]);
    const context = concat(big(kid, 8), big(SUITE, 2));
    const bits = (label, length) => crypto.subtle.deriveBits(
      { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: concat(enc.encode(label), context) },
      ikm, length * 8);
    const raw = new Uint8Array(await bits("SFrame 1.0 Secret key ", NK));
    const salt = new Uint8Array(await bits("SFrame 1.0 Secret salt ", NN));
    const key = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
    return { kid, key, salt, highest: -1, seen: new Set() };
  }

  function nonce(k, ctr) {
    const n = big(ctr, NN);
    for (let i = 0; i < NN; i++) n[i] ^= k.salt[i];
    return n;
  }

  async function encrypt(k, ctr, plaintext, metadata) {
    const header = encodeHeader(k.kid, ctr);
    const sealed = await crypto.subtle.encrypt(
      { name: "AES-GCM", iv: nonce(k, ctr), additionalData: concat(header, metadata), tagLength: NT * 8 },
      k.key, plaintext);
    return concat(header, new Uint8Array(sealed));
  }

  // The plaintext of one SFrame under `k` (whose KID the header named); throws if it does not
  // authenticate, or if its counter was seen before or is older than the window.
  async function decrypt(k, frame, metadata) {
    const { ctr, length } = parseHeader(frame);
    if (ctr <= k.highest - WINDOW) throw new Error(`SFrame CTR ${ctr} is older than the replay window`);
    if (k.seen.has(ctr)) throw new Error(`SFrame CTR ${ctr} was already received`);
    if (frame.length < length + NT) throw new Error("SFrame is shorter than its tag");
    const header = frame.subarray(0, length);
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: nonce(k, ctr), additionalData: concat(header, metadata), tagLength: NT * 8 },
      k.key, frame.subarray(length));
    k.seen.add(ctr);
    if (ctr > k.highest) {
      k.highest = ctr;
      for (const old of k.seen) if (old <= ctr - WINDOW) k.seen.delete(old);
    }
    return new Uint8Array(plain);
  }

  return { concat, big, encodeHeader, parseHeader, deriveKey, encrypt, decrypt, WINDOW };
})();
