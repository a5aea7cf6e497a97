// Config: the effective config (secrets redacted by the listener), the
// last reload's result, and a reload button.
import { h, replace } from "../dom.js";
import { get, post, APIError } from "../api.js";

export default async function config(main) {
  const status = h("div", { id: "reload-status", "aria-live": "polite" });
  const pre = h("pre", { id: "config-json", tabindex: "0", "aria-label": "Effective config (JSON, secrets redacted)" });
  const button = h("button", { type: "button", id: "reload" }, "Reload config");
  const result = h("div", { id: "reload-result", role: "status" });

  const load = async () => {
    const [info, cfg] = await Promise.all([get("/info"), get("/admin/config")]);
    const last = info.last_reload_error
      ? h("div", {}, h("p", { class: "error", id: "last-reload-error" }, "The last reload was refused; the config before it keeps serving:"),
        h("pre", {}, info.last_reload_error))
      : h("p", { class: "ok", id: "last-reload-ok" }, "The last reload (if any) succeeded.");
    replace(status,
      h("p", {}, "Source: ", h("code", {}, info.config || "–"), " · reloads applied: " + (info.reloads ?? 0) +
        " · sluice " + info.version + " · up " + Math.round((info.uptime_seconds || 0) / 60) + " min"),
      last);
    pre.textContent = JSON.stringify(cfg, null, 2);
  };
  button.addEventListener("click", async () => {
    button.disabled = true;
    replace(result);
    try {
      await post("/admin/reload");
      replace(result, h("p", { class: "ok" }, "Reloaded at " + new Date().toLocaleTimeString() + "."));
    } catch (e) {
      const details = e instanceof APIError && e.body && e.body.details;
      replace(result, h("div", { class: "error", id: "reload-error" }, h("p", {}, "Reload refused: " + e.message),
        details ? h("ul", { class: "details" }, details.map((d) => h("li", {}, d))) : null));
    } finally {
      button.disabled = false;
    }
    await load();
  });
  main.append(h("h1", {}, "Config"), h("div", { class: "row" }, button), result, status, h("h2", {}, "Effective config"), pre);
  await load();
}
