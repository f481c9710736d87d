// End-to-end encryption in the page: conf's key agreement in WebCrypto (docs/protocol.md, "End-to-end
// encrypted media"). An X25519 key pair for the meeting; a sender key (SFrame base key and KID) made
// whenever someone joins or leaves and sealed for each other participant with AES-256-GCM under a key
// agreed over X25519 and HKDF-SHA256; the security code everyone compares. The media itself is
// encrypted and decrypted in sframe-worker.js, which gets the keys from here.
"use strict";

const E2ee = (() => {
  const enc = new TextEncoder();
  const PAIRWISE_INFO = enc.encode("conf e2ee pairwise v1");
  const BOX_AAD = enc.encode("conf e2ee sender key v1");
  const CODE_LABEL = enc.encode("conf e2ee security code v2");
  const KEYS_PER_SENDER = 4;

  const b64 = (bytes) => btoa(String.fromCharCode(...bytes));
  function unb64(text) {
    const raw = atob(text);
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }
  const concat = (...parts) => SFrame.concat(...parts);
  const big = (v, n) => SFrame.big(v, n);
  const len16 = (bytes) => concat(big(bytes.length, 2), bytes);
  const random = (n) => crypto.getRandomValues(new Uint8Array(n));
  function compare(a, b) {
    for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
    return a.length - b.length;
  }
  const same = (a, b) => compare(a, b) === 0;

  function decodeKey(text, where) {
    if (typeof text !== "string" || text.length !== 44 || !/^[A-Za-z0-9+/]{43}=$/.test(text))
      throw new Error(`${where} must be 44 base64 characters (a 32-byte X25519 public key)`);
    return unb64(text);
  }

  async function securityCode(meeting, entries) {
    const sorted = entries.map(([name, key]) => concat(len16(enc.encode(name)), key)).sort(compare);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256",
      concat(CODE_LABEL, len16(enc.encode(meeting)), ...sorted)));
    const groups = [];
    for (let i = 0; i < 6; i++) {
      let value = 0n;
      for (const byte of digest.subarray(5 * i, 5 * i + 5)) value = (value << 8n) | BigInt(byte);
      groups.push(String(value % 100000n).padStart(5, "0"));
    }
    return groups.join(" ");
  }

  class KeyRing {
    static async create() {
      const pair = await crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
      const pub = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
      return new KeyRing(pair, pub);
    }

    constructor(pair, pub) {
      this.pair = pair;
      this.public = pub;
      this.publicText = b64(pub);
      this.meeting = null;
      this.me = null;
      this.peers = new Map(); // name -> public key bytes
      this.boxes = new Map(); // name -> AES-GCM CryptoKey (pairwise)
      this.heard = new Map(); // name -> highest sealed-key sequence number opened
      this.receiving = new Map(); // name -> KIDs installed, oldest first
      this.sent = 0;
      this.sender = null; // {kid, key}
      this.onsend = null; // (kid, baseKey) => void: our new sender key, for the media worker
      this.onreceive = null; // (name, kid, baseKey) => void
      this.onforget = null; // (name, kids) => void
      this.unusable = [];
    }

    async start(meeting, me, participants) {
      this.meeting = meeting;
      this.me = me;
      for (const p of participants) {
        if (p.name === me) continue;
        try {
          await this.addPeer(p.name, p.key);
        } catch (err) {
          this.unusable.push(String(err.message || err));
        }
      }
      return this.rekey();
    }

    async peerJoined(name, key) {
      await this.addPeer(name, key);
      return this.rekey();
    }

    async peerLeft(name) {
      if (!this.peers.delete(name)) return null;
      this.forget(name);
      return this.rekey();
    }

    forget(name) {
      this.boxes.delete(name);
      this.heard.delete(name);
      const kids = this.receiving.get(name) || [];
      this.receiving.delete(name);
      if (kids.length) this.onforget?.(name, kids);
    }

    async addPeer(name, key) {
      const raw = decodeKey(key, `${name}'s e2ee key`);
      if (same(raw, this.public)) throw new Error(`${name}'s e2ee key is the same as ours`);
      this.forget(name); // a name used again is a new participant
      this.peers.set(name, raw);
      try {
        await this.box(name);
      } catch (err) {
        this.peers.delete(name);
        throw err;
      }
    }

    async box(name) {
      let box = this.boxes.get(name);
      if (box) return box;
      const theirs = this.peers.get(name);
      let shared;
      try {
        const key = await crypto.subtle.importKey("raw", theirs, { name: "X25519" }, false, []);
        shared = await crypto.subtle.deriveBits({ name: "X25519", public: key }, this.pair.privateKey, 256);
      } catch (err) {
        throw new Error(`${name}'s e2ee key is not usable`);
      }
      const [low, high] = [this.public, theirs].sort(compare);
      const ikm = await crypto.subtle.importKey("raw", shared, "HKDF", false, ["deriveKey"]);
      box = await crypto.subtle.deriveKey(
        { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: concat(PAIRWISE_INFO, low, high) },
        ikm, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
      this.boxes.set(name, box);
      return box;
    }

    aad(sender, recipient) {
      return concat(BOX_AAD, enc.encode(this.meeting), new Uint8Array([0]), sender, recipient);
    }

    // A new sender key, sealed for every peer: the e2ee_keys request to send (null when alone).
    async rekey() {
      const base = random(16);
      let kid;
      do kid = new DataView(random(4).buffer).getUint32(0);
      while ([...this.receiving.values()].some((kids) => kids.includes(kid)));
      this.sender = { kid, base };
      this.sent += 1;
      this.onsend?.(kid, base);
      const keys = [];
      for (const name of [...this.peers.keys()].sort()) {
        const nonce = random(12);
        const sealed = await crypto.subtle.encrypt(
          { name: "AES-GCM", iv: nonce, additionalData: this.aad(this.public, this.peers.get(name)) },
          await this.box(name), concat(big(this.sent, 8), big(kid, 8), base));
        keys.push({ to: name, box: b64(concat(nonce, new Uint8Array(sealed))) });
      }
      return keys.length ? { type: "e2ee_keys", keys } : null;
    }

    // Install the sender key `sender` sealed for us; its KID. Throws if it cannot be used.
    async open(sender, box) {
      if (!this.peers.has(sender)) throw new Error(`a sealed key from ${sender}, who is not in the meeting`);
      if (typeof box !== "string" || box.length > 256) throw new Error(`the sealed key from ${sender} is not a short string`);
      let raw;
      try {
        raw = unb64(box);
      } catch (err) {
        throw new Error(`the sealed key from ${sender} is not valid base64`);
      }
      if (raw.length !== 12 + 16 + 16 + 16) throw new Error(`the sealed key from ${sender} has the wrong length`);
      let plain;
      try {
        plain = new Uint8Array(await crypto.subtle.decrypt(
          { name: "AES-GCM", iv: raw.subarray(0, 12), additionalData: this.aad(this.peers.get(sender), this.public) },
          await this.box(sender), raw.subarray(12)));
      } catch (err) {
        throw new Error(`the sealed key from ${sender} does not open with our keys`);
      }
      const view = new DataView(plain.buffer);
      const seq = Number(view.getBigUint64(0));
      const kid = Number(view.getBigUint64(8));
      if (seq <= (this.heard.get(sender) || 0)) throw new Error(`the sealed key from ${sender} is older than one already received`);
      for (const [name, kids] of this.receiving) {
        if (name !== sender && kids.includes(kid)) throw new Error(`${sender}'s new key reuses the key ID of ${name}'s`);
      }
      this.heard.set(sender, seq);
      const kids = (this.receiving.get(sender) || []).filter((k) => k !== kid);
      kids.push(kid);
      const dropped = kids.splice(0, Math.max(0, kids.length - KEYS_PER_SENDER));
      this.receiving.set(sender, kids);
      if (dropped.length) this.onforget?.(sender, dropped);
      this.onreceive?.(sender, kid, plain.slice(16));
      return kid;
    }

    securityCode() {
      return securityCode(this.meeting, [[this.me, this.public], ...this.peers]);
    }
  }

  return { KeyRing, securityCode, b64, unb64 };
})();
