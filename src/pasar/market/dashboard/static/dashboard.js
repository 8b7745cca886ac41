// pasar dashboard: live refresh by polling a page's <main> (?fragment=1), and "verify this
// block" in the browser (WebCrypto: SHA-256 and Ed25519). No library, no build step.
"use strict";

(function live() {
  const main = document.getElementById("live");
  const every = main && Number(main.dataset.refreshS);
  if (!every) return;
  async function refresh() {
    if (document.hidden) return;
    const url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) return;
      const open = [...main.querySelectorAll("details")].map((d) => d.open);
      main.innerHTML = await response.text();
      main.querySelectorAll("details").forEach((d, i) => { if (open[i]) d.open = true; });
      main.dataset.refreshedAt = String(Date.now());
    } catch (err) {
      // the market is restarting or the network dropped: try again at the next tick
    }
  }
  window.setInterval(refresh, every * 1000);
})();

const BLOCK_DOMAIN = "pasar/block/v1\n";
const GENESIS_PREV = "0".repeat(64);

function canonical(value) {
  // the market's canonical JSON: sorted keys, no spaces (pasar.crypto.canonical)
  if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
  if (value !== null && typeof value === "object") {
    return "{" + Object.keys(value).sort()
      .map((k) => JSON.stringify(k) + ":" + canonical(value[k])).join(",") + "}";
  }
  return JSON.stringify(value);
}

function header(block) {
  const out = {};
  for (const key of Object.keys(block)) if (key !== "sig" && key !== "hash") out[key] = block[key];
  return out;
}

function hex(bytes) {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function unhex(text) {
  if (!/^([0-9a-f]{2})*$/.test(text)) throw new Error("not hex");
  return new Uint8Array(text.match(/../g).map((h) => parseInt(h, 16)));
}

function publicKeyOf(account) {
  // "pa1" + base32(public key || 4-byte checksum), lower case, no padding
  if (!/^pa1[a-z2-7]{58}$/.test(account)) throw new Error("signer is not an account id");
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  let bits = 0, value = 0;
  const out = [];
  for (const c of account.slice(3)) {
    value = (value << 5) | alphabet.indexOf(c);
    bits += 5;
    if (bits >= 8) { out.push((value >>> (bits - 8)) & 255); bits -= 8; }
  }
  return new Uint8Array(out.slice(0, 32));
}

async function sha256(bytes) {
  return hex(await crypto.subtle.digest("SHA-256", bytes));
}

async function verifyBlock(data) {
  const problems = [];
  const block = data.block;
  const enc = new TextEncoder();
  const body = enc.encode(canonical(header(block)));
  const hash = await sha256(body);
  if (hash !== block.hash) problems.push("its header does not hash to its hash");
  if (block.signer !== data.market) problems.push("it is not signed by this market's key");
  const key = await crypto.subtle.importKey(
    "raw", publicKeyOf(block.signer), { name: "Ed25519" }, false, ["verify"]);
  const message = new Uint8Array([...enc.encode(BLOCK_DOMAIN), ...body]);
  const good = await crypto.subtle.verify({ name: "Ed25519" }, key, unhex(block.sig), message);
  if (!good) problems.push("the Ed25519 signature does not match its header");
  if (block.height === 0) {
    if (block.prev_hash !== GENESIS_PREV) problems.push("genesis must link to 64 zeros");
  } else if (!data.prev) {
    problems.push("the block before it is missing");
  } else {
    const prevHash = await sha256(enc.encode(canonical(header(data.prev))));
    if (data.prev.height !== block.height - 1 || prevHash !== block.prev_hash) {
      problems.push("prev_hash is not the hash of the block before it");
    }
  }
  if (block.last_seq - block.first_seq + 1 !== block.txs.length) {
    problems.push("its transaction count does not match its log range");
  }
  return problems;
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest && event.target.closest("#verify");
  if (!button) return;
  const status = document.getElementById("verify-status");
  status.dataset.state = "checking";
  status.textContent = "checking…";
  try {
    if (!window.crypto || !crypto.subtle) throw new Error("WebCrypto needs HTTPS or localhost");
    const data = JSON.parse(document.getElementById("block-data").textContent);
    const problems = await verifyBlock(data);
    status.dataset.state = problems.length ? "invalid" : "valid";
    status.textContent = problems.length
      ? "INVALID: " + problems.join("; ")
      : "valid: hash, market signature (Ed25519) and link to the previous block all check";
  } catch (err) {
    status.dataset.state = "invalid";
    status.textContent = "INVALID: " + err.message;
  }
});
