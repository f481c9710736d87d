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

  return { units, packetize, wrap, WRAP_HEADER };
})();
