// H.264 framing for end-to-end encrypted video from the page (docs/web.md, "End-to-end encrypted
// meetings"): the RTP packetisation of RFC 6184 that conf uses (one NAL unit per payload, FU-A
// fragments for longer ones), and the wrapping that carries one sealed payload through Chromium's own
// H.264 packetiser untouched. Loaded by the media worker; nothing here touches the page.
"use strict";

const H264 = (() => {
  // The NAL units of an Annex B access unit (start codes 00 00 01 or 00 00 00 01 between them).
  function units(data) {
    const out = [];
    let start = -1;
    for (let i = 0; i + 2 < data.length; i++) {
      if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1) {
        if (start >= 0) out.push(data.subarray(start, i > 0 && data[i - 1] === 0 ? i - 1 : i));
        start = i + 3;
        i += 2;
      }
    }
    if (start >= 0 && start < data.length) out.push(data.subarray(start));
    return out.filter((u) => u.length > 0);
  }

  // RTP payloads for an access unit: each NAL unit whole when it fits in `piece` bytes, else FU-A.
  function packetize(data, piece) {
    const payloads = [];
    for (const nal of units(data)) {
      if (nal.length <= piece) {
        payloads.push(nal);
        continue;
      }
      const indicator = (nal[0] & 0xe0) | 28;
      const type = nal[0] & 0x1f;
      for (let at = 1; at < nal.length; at += piece - 2) {
        const end = Math.min(nal.length, at + piece - 2);
        const header = (at === 1 ? 0x80 : 0) | (end === nal.length ? 0x40 : 0) | type;
        const payload = new Uint8Array(2 + end - at);
        payload[0] = indicator;
        payload[1] = header;
        payload.set(nal.subarray(at, end), 2);
        payloads.push(payload);
      }
    }
    return payloads;
  }

  // One sealed payload as an Annex B NAL unit Chromium packetises as it is: a start code, a NAL
  // header (type 1), the bytes with emulation prevention (00 00 03 before any 00..03 that follows two
  // zeros, so no start code appears inside), and a final 0x80 (so it never ends in a zero).
  const WRAP_HEADER = 0x61;
  function wrap(sealed) {
    const out = [0, 0, 0, 1, WRAP_HEADER];
    let zeros = 0;
    for (const byte of sealed) {
      if (zeros >= 2 && byte <= 3) {
        out.push(3);
        zeros = 0;
      }
      out.push(byte);
      zeros = byte === 0 ? zeros + 1 : 0;
    }
    out.push(0x80);
    return new Uint8Array(out);
  }

  function unescape(data) {
    const out = new Uint8Array(data.length);
    let n = 0;
    let zeros = 0;
    for (const byte of data) {
      if (zeros >= 2 && byte === 3) {
        zeros = 0;
        continue;
      }
      out[n++] = byte;
      zeros = byte === 0 ? zeros + 1 : 0;
    }
    return out.subarray(0, n);
  }

  // The sealed payloads in a frame the web service sent (conf_web.media: an IDR slice header, the
  // payload escaped, 0x80); the parameter sets it adds are skipped.
  const SEALED_IDR = [0x65, 0x88, 0x80];
  function sealedPayloads(data) {
    return units(data)
      .filter((u) => u.length > 4 && u[0] === SEALED_IDR[0] && u[1] === SEALED_IDR[1] && u[2] === SEALED_IDR[2])
      .map((u) => unescape(u.subarray(3, u.length - 1)));
  }

  // An Annex B access unit from RTP payloads in order (single NAL units, STAP-A, FU-A); a payload
  // missing (null) drops the fragmented NAL unit it belonged to.
  function depacketize(payloads) {
    const nals = [];
    let fragments = null;
    for (const p of payloads) {
      if (!p || !p.length) {
        fragments = null;
        continue;
      }
      const type = p[0] & 0x1f;
      if (type === 28 && p.length > 2) {
        if (p[1] & 0x80) fragments = [new Uint8Array([(p[0] & 0xe0) | (p[1] & 0x1f)])];
        if (fragments) fragments.push(p.subarray(2));
        if (p[1] & 0x40 && fragments) {
          nals.push(SFrame.concat(...fragments));
          fragments = null;
        }
      } else if (type === 24) {
        for (let at = 1; at + 2 <= p.length; ) {
          const size = (p[at] << 8) | p[at + 1];
          nals.push(p.subarray(at + 2, at + 2 + size));
          at += 2 + size;
        }
      } else nals.push(p);
    }
    const start = new Uint8Array([0, 0, 0, 1]);
    return SFrame.concat(...nals.flatMap((nal) => [start, nal]));
  }

  return { units, packetize, wrap, unescape, sealedPayloads, depacketize, WRAP_HEADER };
})();
