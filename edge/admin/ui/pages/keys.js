// API keys: list, create (the raw key is shown once, with a copy
// button), revoke and delete, with each key's own limits.
import { h, replace, table, badge, toast, keepFocus, slug } from "../dom.js";
import { get, post, del, seg, APIError } from "../api.js";

export function keyStatus(k) {
  if (k.revoked_at) return badge("revoked", "bad");
  if (k.expires_at && new Date(k.expires_at) <= new Date()) return badge("expired", "warn");
  return badge("active", "ok");
}

const when = (s) => s ? new Date(s).toLocaleString() : "–";

export default async function keys(main) {
  const list = h("div");
  const err = h("p", { class: "error", role: "alert", id: "keys-error" });
  const secret = h("div", { id: "new-key-area", "aria-live": "polite" });
  const name = h("input", { id: "key-name", name: "name", required: true, maxlength: "128" });
  const roles = h("input", { id: "key-roles", name: "roles", placeholder: "reader, writer" });
  const rate = h("input", { id: "key-rate", name: "rate_limit", type: "number", min: "0", placeholder: "route's" });
  const quota = h("input", { id: "key-quota", name: "quota", type: "number", min: "0", placeholder: "route's" });
  const expires = h("input", { id: "key-expires", name: "expires_at", type: "datetime-local" });
  const create = h("button", { type: "submit", id: "key-create" }, "Create key");

  const refresh = async () => {
    let ks;
    try {
      ks = await get("/admin/apikeys");
    } catch (e) {
      if (e instanceof APIError && e.status === 404) {
        replace(main, h("h1", {}, "API keys"), h("p", { class: "muted" }, "API keys are not configured: set auth.api_keys (a file or Redis) to manage them here."));
        return false;
      }
      err.textContent = "Could not list keys: " + e.message;
      return true;
    }
    const rows = (ks || []).map((k) => {
      const revoke = h("button", { type: "button", class: "quiet", id: "revoke-" + slug(k.id), disabled: k.revoked_at ? true : undefined,
        "aria-label": "Revoke key " + k.name }, "Revoke");
      revoke.addEventListener("click", async () => {
        try { await post("/admin/apikeys/" + seg(k.id) + "/revoke"); toast("Key " + k.name + " revoked."); } catch (e) { toast("Revoke failed: " + e.message); }
        await refresh();
      });
      // Delete asks twice, in the page: no blocking confirm() dialog.
      const remove = h("button", { type: "button", class: "danger", id: "delete-" + slug(k.id), "aria-label": "Delete key " + k.name }, "Delete");
      remove.addEventListener("click", async () => {
        if (remove.dataset.armed !== "1") {
          remove.dataset.armed = "1";
          remove.textContent = "Confirm delete";
          return;
        }
        try { await del("/admin/apikeys/" + seg(k.id)); toast("Key " + k.name + " deleted."); } catch (e) { toast("Delete failed: " + e.message); }
        await refresh();
      });
      return [
        k.name, [k.id, "mono"], [k.prefix + "…", "mono"], (k.roles || []).join(", ") || "–",
        [k.rate_limit ? k.rate_limit + "/s" : "route's", "num"], [k.quota ? k.quota + "/day" : "route's", "num"],
        when(k.created_at), when(k.expires_at), keyStatus(k), h("span", { class: "row" }, revoke, remove),
      ];
    });
    keepFocus(() => replace(list, rows.length
      ? table(["Name", "Id", "Prefix", "Roles", ["Rate limit", "num"], ["Quota", "num"], "Created", "Expires", "Status", ""], rows, { id: "keys-table" })
      : h("p", { class: "muted" }, "No keys yet.")));
    return true;
  };

  const form = h("form", { class: "grid", "aria-label": "Create an API key", on: { submit: async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    const spec = { name: name.value.trim() };
    const rs = roles.value.split(",").map((s) => s.trim()).filter(Boolean);
    if (rs.length) spec.roles = rs;
    if (rate.value) spec.rate_limit = Number(rate.value);
    if (quota.value) spec.quota = Number(quota.value);
    if (expires.value) spec.expires_at = new Date(expires.value).toISOString();
    create.disabled = true;
    try {
      const r = await post("/admin/apikeys", spec);
      showSecret(r.api_key, r.raw_key);
      form.reset();
      await refresh();
    } catch (e) {
      err.textContent = "Could not create the key: " + e.message;
    } finally {
      create.disabled = false;
    }
  } } },
  h("label", {}, "Name", name), h("label", {}, "Roles (comma-separated)", roles),
  h("label", {}, "Rate limit (requests/s)", rate), h("label", {}, "Quota (requests/day)", quota),
  h("label", {}, "Expires", expires), h("div", {}, create));

  // showSecret shows the raw key once: it is not kept anywhere in the page
  // after "Done", and the listener never shows it again.
  const showSecret = (rec, raw) => {
    const code = h("code", { id: "new-key-value" }, raw);
    const copy = h("button", { type: "button", id: "new-key-copy" }, "Copy");
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(raw);
        toast("Key copied.");
      } catch {
        const r = document.createRange();
        r.selectNodeContents(code);
        getSelection().removeAllRanges();
        getSelection().addRange(r);
        toast("Select-all done: press Ctrl+C (the clipboard is not available here).");
      }
    });
    const done = h("button", { type: "button", class: "quiet", id: "new-key-done" }, "Done");
    done.addEventListener("click", () => { replace(secret); name.focus(); });
    replace(secret, h("div", { class: "secret", role: "group", "aria-label": "New key" },
      h("strong", {}, "Key " + rec.name + " created. Store it now: it is not shown again."), code, copy, done));
    copy.focus();
  };

  main.append(h("h1", {}, "API keys"), h("section", { class: "panel" }, h("h2", {}, "New key"), form, secret), err, list);
  await refresh();
}
