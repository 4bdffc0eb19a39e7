// The mail settings page: "Моя организация → Почтовые шлюзы", a client of /api/v1.
//
// Every button is an API call; what a user may do is what the API lets them (mirrored in
// `may` below so that the page offers nothing the API would refuse). New mail and gateway
// states arrive over the API's event stream. Text is set with textContent only (never HTML).

import { lang, setLang, t } from "./i18n.js";

// --- the DOM ---------------------------------------------------------------------------

/** An element: h("button", {class: "x", onclick: f}, "text", child, ...). */
function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "checked" || key === "value" || key === "selected") element[key] = value;
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** `element`'s children replaced by `children` (arrays flattened, null and false left out). */
function fill(element, ...children) {
  element.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

const app = document.getElementById("app");
let fieldIds = 0;

/** A labelled field; its problems are shown under it (aria-describedby). */
function field(label, name, control, hint) {
  const id = `f${++fieldIds}`;
  control.id = id;
  control.name = name;
  const error = h("p", { class: "error", id: `${id}-error`, "data-error-for": name, hidden: true });
  control.setAttribute("aria-describedby", `${id}-error`);
  // (the control beside its label, not inside it: a label's name would take in the control's value)
  if (control.type === "checkbox") return h("div", { class: "check" }, control, h("label", { for: id }, label), error);
  if (hint) control.setAttribute("aria-description", hint);
  return h("div", { class: "field" }, h("div", {}, h("label", { for: id }, label),
    hint ? h("span", { class: "muted" }, ` (${hint})`) : null), control, error);
}

const input = (value = "", props = {}) => h("input", { type: "text", value: value ?? "", ...props });
const checkbox = (checked, props = {}) => h("input", { type: "checkbox", checked: !!checked, ...props });
function select(options, value, props = {}) {
  return h("select", props, options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
}
function radio(name, value, label, checked) {
  const id = `f${++fieldIds}`;
  return h("div", { class: "check" }, h("input", { type: "radio", id, name, value, checked }), h("label", { for: id }, label));
}
const list = (text) => (text || "").split(",").map((s) => s.trim()).filter(Boolean);

// --- the API ---------------------------------------------------------------------------

class Problem extends Error {
  constructor(status, document) {
    super(document.detail || document.title || `HTTP ${status}`);
    this.status = status;
    this.kind = (document.type || "").split("/").pop() || "problem";
    this.field = document.field || null;
    this.detail = document.detail || "";
  }
}

const session = { token: sessionStorage.getItem("prostoy-mail.token"), me: null };

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const answer = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (answer.status === 401 && session.token && path !== "/sessions") {
    forget();
    showLogin(t("sessionEnded"));
    throw new Problem(401, { type: "unauthenticated" });
  }
  if (!answer.ok) {
    let document = {};
    try { document = await answer.json(); } catch { /* not JSON */ }
    throw new Problem(answer.status, document);
  }
  return answer.status === 204 ? null : answer.json();
}

const org = () => `/organisations/${encodeURIComponent(session.me.organisation)}`;

function forget() {
  session.token = null;
  session.me = null;
  sessionStorage.removeItem("prostoy-mail.token");
  events.stop();
}

/** A problem shown in `form`: next to its field when the API names one the form has. */
function showProblem(form, problem) {
  for (const old of form.querySelectorAll("[data-error-for]")) { old.hidden = true; old.textContent = ""; }
  for (const old of form.querySelectorAll("[aria-invalid]")) old.removeAttribute("aria-invalid");
  const words = t(`problem-${problem.kind}`) === `problem-${problem.kind}` ? t("problem") : t(`problem-${problem.kind}`);
  const place = (problem.field && form.querySelector(`[data-error-for="${CSS.escape(problem.field)}"]`))
    || form.querySelector('[data-error-for="_form"]');
  place.hidden = false;
  fill(place, h("span", {}, words), problem.detail ? h("span", { class: "detail" }, ` — ${problem.detail}`) : null);
  const control = problem.field && form.querySelector(`[name="${CSS.escape(problem.field)}"]`);
  if (control) { control.setAttribute("aria-invalid", "true"); control.focus(); }
}

// --- what there is -----------------------------------------------------------------------

const data = { servers: [], gateways: [], mailboxes: [], rules: [], users: [], tasks: [], projects: [] };
const view = { tab: "gateways", hideUnused: false, task: null };

async function load() {
  const [servers, gateways, mailboxes, rules, users, tasks, projects] = await Promise.all([
    api("GET", `${org()}/servers?hide_unused=${view.hideUnused}`), api("GET", `${org()}/gateways`),
    api("GET", `${org()}/mailboxes`), api("GET", `${org()}/rules`), api("GET", `${org()}/users`),
    api("GET", `${org()}/tasks`), api("GET", `${org()}/projects`)]);
  Object.assign(data, { servers, gateways, mailboxes, rules, users, tasks, projects });
}

// What the signed-in user may do: exactly what the API allows (api/*_routes.py).
const may = {
  manage: () => session.me.role !== "employee",
  editGateway: (g) => may.manage() || g.personal_for === session.me.login,
  editRule: (r) => may.manage() || (r.editable_by_owner && (
    data.gateways.some((g) => g.email === r.gateway && g.personal_for === session.me.login)
    || data.mailboxes.some((m) => m.login === r.mailbox && m.owner === session.me.login))),
};

// --- the event stream ----------------------------------------------------------------------

const events = {
  controller: null,
  last: null,
  stop() { this.controller?.abort(); this.controller = null; },
  async start() {
    this.stop();
    const controller = (this.controller = new AbortController());
    while (!controller.signal.aborted && session.token) {
      try {
        const headers = { Authorization: `Bearer ${session.token}`, Accept: "text/event-stream" };
        if (this.last !== null) headers["Last-Event-ID"] = String(this.last);
        const answer = await fetch(`/api/v1${org()}/events`, { headers, signal: controller.signal });
        if (!answer.ok) throw new Error(`events: ${answer.status}`);
        const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const fields = Object.fromEntries(block.split("\n").filter((l) => l && !l.startsWith(":"))
              .map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1).trimStart()]));
            if (fields.id) this.last = Number(fields.id);
            if (fields.data) heard(fields.event, JSON.parse(fields.data));
          }
        }
      } catch (error) {
        if (controller.signal.aborted) return;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));  // (then again, from the last event)
    }
  },
};

function heard(type, event) {
  if (type === "comment.created" && event.object && view.task === event.object.task) {
    const comments = document.getElementById("comments");
    if (comments) {
      comments.querySelector(".muted")?.remove();
      comments.prepend(commentView(event.object));
    }
  } else if (type === "gateway.state" && event.object) {
    const gateway = data.gateways.find((g) => g.email === event.object.gateway);
    if (gateway) {
      Object.assign(gateway, { state: event.object.state, failed_step: event.object.step, last_error: event.object.error });
      if (view.tab === "gateways") render();
    }
  }
}

// --- signing in and out --------------------------------------------------------------------

function showLogin(message) {
  const form = h("form", { class: "fields", onsubmit: signIn },
    h("h1", {}, t("title")),
    message ? h("p", { class: "error", role: "alert" }, message) : null,
    field(t("login"), "login", input("", { autocomplete: "username", required: true })),
    field(t("password"), "password", input("", { type: "password", autocomplete: "current-password", required: true })),
    h("p", { class: "error", "data-error-for": "_form", hidden: true, role: "alert" }),
    h("div", { class: "row" }, h("button", { class: "primary", type: "submit" }, t("signIn")), languageSwitch()));
  fill(app, h("div", { class: "login" }, form));
  form.querySelector("input").focus();
}

async function signIn(submit) {
  submit.preventDefault();
  const form = submit.target;
  try {
    const answer = await api("POST", "/sessions", { login: form.login.value, password: form.password.value });
    session.token = answer.token;
    sessionStorage.setItem("prostoy-mail.token", answer.token);
    await start();
  } catch (problem) {
    if (problem.status === 401) problem.detail = t("badLogin");
    showProblem(form, problem);
  }
}

async function signOut() {
  try { await api("DELETE", "/sessions/current"); } catch { /* gone already */ }
  forget();
  showLogin();
}

function languageSwitch() {
  return h("button", { type: "button", lang: t("languageCode"), onclick: () => { setLang(t("languageCode")); session.me ? render() : showLogin(); } },
    t("language"));
}

// --- the screens -------------------------------------------------------------------------

async function start() {
  session.me = await api("GET", "/me");
  if (!session.me.organisation) { forget(); showLogin(t("problem-forbidden")); return; }
  await load();
  render();
  events.start();
}

function render() {
  document.title = `${t("title")} — ${session.me.organisation}`;
  const tabs = [["gateways", t("tabGateways")], ["rules", t("tabRules")], ["tasks", t("tabTasks")]];
  const content = { gateways: gatewaysTab, rules: rulesTab, tasks: tasksTab }[view.tab]();
  fill(app,
    h("header", {}, h("h1", {}, `${t("org")} → ${t("tabGateways")}`),
      h("span", {}, `${session.me.login} · ${session.me.organisation}`), languageSwitch(),
      h("button", { type: "button", onclick: signOut }, t("signOut"))),
    h("nav", { role: "tablist" }, tabs.map(([name, label]) => h("button", {
      role: "tab", type: "button", id: `tab-${name}`, "aria-selected": String(view.tab === name),
      onclick: () => { view.tab = name; render(); } }, label))),
    h("section", { class: "tab", role: "tabpanel", "aria-labelledby": `tab-${view.tab}` }, content));
}

function stateBadge(gateway) {
  const state = gateway.state || "none";
  return h("span", { class: `badge state-${state}`, "data-state": state,
    title: gateway.last_error || "" }, t(`state_${state}`),
  gateway.state && gateway.state !== "idle" && gateway.failed_step ? ` (${t(`step_${gateway.failed_step}`)})` : "");
}

function gatewaysTab() {
  const servers = h("ul", { class: "plain", "aria-label": t("servers") }, data.servers.map((server) => {
    const gateways = data.gateways.filter((g) => g.server === server.name);
    return h("li", { "data-server": server.name },
      h("div", { class: "row" }, h("strong", { class: "grow" }, server.name),
        server.preset ? h("span", { class: "badge" }, t("preset")) : null,
        may.manage() && !server.preset ? h("button", { type: "button", onclick: () => serverDialog(server) }, t("edit")) : null,
        may.manage() && !server.preset ? h("button", { type: "button", onclick: () => remove(`${org()}/servers/${encodeURIComponent(server.name)}`, server.name) }, t("remove")) : null),
      h("div", { class: "detail", "data-endpoints": "" }, [["IMAP", server.imap], ["POP3", server.pop3], ["SMTP", server.smtp]]
        .filter(([, endpoint]) => endpoint).map(([name, endpoint]) => `${name} ${endpoint}`).join(" · ")),
      gateways.length === 0 ? h("div", { class: "muted" }, t("noGateways")) : h("ul", { class: "plain" }, gateways.map((g) =>
        h("li", { "data-gateway": g.email }, h("div", { class: "row" }, h("span", { class: "grow" }, g.email), stateBadge(g),
          g.task ? h("button", { type: "button", onclick: () => openTask(g.task) }, `${t("task")} #${g.task}`) : null,
          may.editGateway(g) ? h("button", { type: "button", onclick: () => gatewayDialog(g) }, t("edit")) : null,
          may.editGateway(g) ? h("button", { type: "button", onclick: () => savedTest(g) }, t("test")) : null,
          may.manage() ? h("button", { type: "button", onclick: () => remove(`${org()}/gateways/${encodeURIComponent(g.email)}`, g.email) }, t("remove")) : null),
        g.state && g.state !== "idle" && g.last_error ? h("div", { class: "detail" }, g.last_error) : null))));
  }));
  const hide = checkbox(view.hideUnused, { onchange: async (e) => { view.hideUnused = e.target.checked; await load(); render(); } });
  const left = h("div", { class: "panel" }, h("h2", {}, t("servers")), field(t("hideUnused"), "hide_unused", hide), servers,
    may.manage() ? h("div", { class: "actions" },
      h("button", { type: "button", onclick: mailboxDialog }, t("prostoy")),
      h("button", { type: "button", onclick: () => serverDialog(null) }, t("createServer")),
      h("button", { type: "button", onclick: () => gatewayDialog(null) }, t("createGateway"))) : null);
  const mailboxes = h("div", { class: "panel" }, h("h2", {}, t("mailboxes")),
    data.mailboxes.length === 0 ? h("p", { class: "muted" }, t("noMailboxes")) : null,
    h("ul", { class: "plain" }, data.mailboxes.map((m) =>
    h("li", { "data-mailbox": m.login }, h("div", { class: "row" }, h("span", { class: "grow" }, m.address),
      m.task ? h("button", { type: "button", onclick: () => openTask(m.task) }, `${t("task")} #${m.task}`) : null,
      may.manage() ? h("button", { type: "button", onclick: () => remove(`${org()}/mailboxes/${encodeURIComponent(m.login)}`, m.address) }, t("remove")) : null)))));
  return h("div", { class: "columns" }, left, mailboxes);
}

async function remove(path, name) {
  if (!confirm(t("confirmRemove", { name }))) return;
  try { await api("DELETE", path); } catch (problem) { alert(`${t(`problem-${problem.kind}`)}: ${problem.detail}`); }
  await load();
  render();
}

/** A modal form: `fields` inside, Save calls `save(form)`; its problems shown in it. */
function dialog(title, fields, save, extra = []) {
  const form = h("form", { class: "fields", method: "dialog" }, h("h2", {}, title), fields,
    h("p", { class: "error", "data-error-for": "_form", hidden: true, role: "alert" }), extra,
    h("div", { class: "row" }, h("button", { class: "primary", type: "submit" }, t("save")),
      h("button", { type: "button", onclick: () => box.close() }, t("cancel"))));
  const box = h("dialog", { "aria-label": title }, form);
  form.addEventListener("submit", async (submit) => {
    submit.preventDefault();
    try {
      await save(form);
      box.close();
      await load();
      render();
    } catch (problem) {
      if (!(problem instanceof Problem)) throw problem;
      showProblem(form, problem);
    }
  });
  box.addEventListener("close", () => box.remove());
  document.body.append(box);
  box.showModal();
  return form;
}

function mailboxDialog() {
  dialog(t("prostoy"), [field(t("mailboxLogin"), "login", input("", { required: true }), `login@${"…"}`)],
    (form) => api("POST", `${org()}/mailboxes`, { login: form.login.value }));
}

function endpointParts(text) {
  if (!text) return ["", ""];
  const at = text.lastIndexOf(":");
  return at > 0 ? [text.slice(0, at).replace(/^\[|\]$/g, ""), text.slice(at + 1)] : [text, ""];
}

function serverDialog(server) {
  const incoming = server?.pop3 && !server?.imap ? "pop3" : "imap";
  const [inHost, inPort] = endpointParts(server?.[incoming]);
  const [smtpHost, smtpPort] = endpointParts(server?.smtp);
  const protocol = select([["imap", "IMAP"], ["pop3", "POP3"]], incoming);
  const security = server?.security === "starttls" ? "starttls" : server?.security || "none";
  const fields = [
    field(t("serverName"), "name", input(server?.name, { required: true, disabled: !!server })),
    h("div", { class: "row" }, field(t("incomingProtocol"), "incoming_protocol", protocol),
      field(t("incoming"), incoming, input(inHost, { "data-part": "in-host" })),
      field(t("port"), "in_port", input(inPort, { inputmode: "numeric", size: 6, "data-part": "in-port" }))),
    h("div", { class: "row" }, field(t("smtpServer"), "smtp", input(smtpHost, { "data-part": "smtp-host" })),
      field(t("port"), "smtp_port", input(smtpPort, { inputmode: "numeric", size: 6, "data-part": "smtp-port" }))),
    field(t("verifyCertificate"), "verify_certificate", checkbox(server ? server.verify_certificate : true)),
    field(t("useSsl"), "ssl", checkbox(server ? server.ssl : true)),
    h("fieldset", {}, h("legend", {}, t("security")), h("div", { "data-error-for": "security", class: "error", hidden: true }),
      [["none", t("securityNone")], ["ssl", t("securitySsl")], ["starttls", t("securityTls")]].map(([value, label]) =>
        radio("security", value, label, value === security))),
  ];
  dialog(server ? `${t("edit")}: ${server.name}` : t("createServer"), fields, (form) => {
    const at = (host, port) => (host.trim() ? (port.trim() ? `${host.trim()}:${port.trim()}` : host.trim()) : null);
    const chosen = form.incoming_protocol.value;
    const body = {
      [chosen]: at(form.querySelector("[data-part=in-host]").value, form.querySelector("[data-part=in-port]").value),
      [chosen === "imap" ? "pop3" : "imap"]: null,
      smtp: at(form.querySelector("[data-part=smtp-host]").value, form.querySelector("[data-part=smtp-port]").value),
      verify_certificate: form.verify_certificate.checked, ssl: form.ssl.checked,
      security: form.querySelector("input[name=security]:checked").value,
    };
    if (server) return api("PATCH", `${org()}/servers/${encodeURIComponent(server.name)}`, body);
    return api("POST", `${org()}/servers`, { name: form.name.value, ...body });
  });
}

function gatewayDialog(gateway) {
  const owner = may.manage();
  const servers = select(data.servers.map((s) => [s.name, s.name]), gateway?.server ?? data.servers[0]?.name, { disabled: !owner });
  const same = checkbox(gateway ? gateway.same_smtp_login : true);
  const smtpFields = h("div", { hidden: same.checked },
    field(t("smtpLogin"), "smtp_login", input(gateway && !gateway.same_smtp_login ? gateway.smtp_login : "", { autocomplete: "off" })),
    field(t("smtpPassword"), "smtp_password", input("", { type: "password", autocomplete: "new-password" }), gateway ? t("passwordKept") : null));
  same.addEventListener("change", () => { smtpFields.hidden = same.checked; });
  const personal = checkbox(!!gateway?.personal_for, { disabled: !owner });
  const employee = select([["", "—"], ...data.users.map((u) => [u.login, `${u.name} (${u.login})`])], gateway?.personal_for ?? "", { disabled: !owner });
  const steps = h("ul", { class: "steps plain", "aria-live": "polite" });
  const flags = [["forwarding", "forwarding", true], ["keep_on_server", "keepOnServer", true], ["upload_sent", "uploadSent", false],
    ["mark_read", "markRead", false], ["delete_on_server_when_deleted", "deleteOnServer", false]];
  const fields = [
    h("div", { class: "row" }, field(t("server"), "server", servers),
      field(t("incomingProtocol"), "protocol", select([["imap", "IMAP"], ["pop3", "POP3"]], gateway?.protocol ?? "imap", { disabled: !owner }))),
    field(t("email"), "email", input(gateway?.email, { type: "email", required: true, disabled: !!gateway, autocomplete: "off" })),
    field(t("login"), "login", input(gateway?.login, { disabled: !owner, autocomplete: "off" })),
    field(t("password"), "password", input("", { type: "password", required: !gateway, autocomplete: "new-password" }), gateway ? t("passwordKept") : null),
    field(t("sameSmtp"), "same_smtp_login", same), smtpFields,
    h("div", { class: "row" }, field(t("personal"), "personal", personal), field(t("employee"), "personal_for", employee)),
    flags.map(([name, label, fallback]) => field(t(label), name, checkbox(gateway ? gateway[name] : fallback))),
  ];
  const test = h("button", { type: "button" }, t("test"));
  const form = dialog(gateway ? `${t("edit")}: ${gateway.email}` : t("createGateway"), fields, (form) => {
    const body = {};
    for (const [name] of flags) body[name] = form[name].checked;
    if (form.password.value) body.password = form.password.value;
    if (!same.checked) {
      if (form.smtp_login.value) body.smtp_login = form.smtp_login.value;
      if (form.smtp_password.value) body.smtp_password = form.smtp_password.value;
    }
    if (owner) {
      body.server = form.server.value;
      body.protocol = form.protocol.value;
      if (form.login.value) body.login = form.login.value;
      body.personal_for = personal.checked ? form.personal_for.value || null : (gateway ? "" : null);
    }
    if (!gateway) return api("POST", `${org()}/gateways`, { email: form.email.value, ...body });
    if (same.checked !== gateway.same_smtp_login) body.same_smtp_login = same.checked;
    if (owner && body.server === gateway.server) delete body.server;
    if (owner && body.protocol === gateway.protocol) delete body.protocol;
    if (owner && body.login === gateway.login) delete body.login;
    if (owner && (body.personal_for ?? "") === (gateway.personal_for ?? "")) delete body.personal_for;
    return api("PATCH", `${org()}/gateways/${encodeURIComponent(gateway.email)}`, body);
  }, [h("div", { class: "row" }, test), steps]);
  test.addEventListener("click", async () => {
    fill(steps, h("li", {}, t("testing")));
    try {
      let result;
      if (gateway && !form.password.value) {  // (the saved settings: the password is not shown, so not sent)
        result = await api("POST", `${org()}/gateways/${encodeURIComponent(gateway.email)}/test`);
      } else {
        const body = { email: form.email.value, server: form.server.value, protocol: form.protocol.value,
          login: form.login.value || null, password: form.password.value, smtp: !!data.servers.find((s) => s.name === form.server.value)?.smtp };
        if (!same.checked && form.smtp_login.value) body.smtp_login = form.smtp_login.value;
        if (!same.checked && form.smtp_password.value) body.smtp_password = form.smtp_password.value;
        result = await api("POST", `${org()}/gateways/verify`, body);
      }
      showSteps(steps, result);
    } catch (problem) {
      fill(steps);
      showProblem(form, problem);
    }
  });
}

function showSteps(steps, result) {
  fill(steps, h("li", { class: result.ok ? "ok" : "failed", "data-result": result.ok ? "ok" : "failed" },
    result.ok ? t("testOk") : t("testFailed")),
  result.steps.map((step) => h("li", { class: step.ok ? "ok" : "failed", "data-step": `${step.protocol}:${step.step}`,
    "data-ok": String(step.ok) }, `${step.protocol.toUpperCase()} · ${t(`step_${step.step}`)}: `, h("span", { class: "detail" }, step.detail))));
}

async function savedTest(gateway) {
  const steps = h("ul", { class: "steps plain", "aria-live": "polite" }, h("li", {}, t("testing")));
  const box = h("dialog", { "aria-label": `${t("test")}: ${gateway.email}` }, h("h2", {}, `${t("test")}: ${gateway.email}`), steps,
    h("button", { type: "button", onclick: () => box.close() }, t("close")));
  box.addEventListener("close", () => box.remove());
  document.body.append(box);
  box.showModal();
  try { showSteps(steps, await api("POST", `${org()}/gateways/${encodeURIComponent(gateway.email)}/test`)); }
  catch (problem) { fill(steps, h("li", { class: "failed" }, `${t(`problem-${problem.kind}`)}: ${problem.detail}`)); }
}

// --- rules ---------------------------------------------------------------------------------

function ruleAction(rule) {
  if (rule.action === "ignore") return t("actionIgnore");
  if (rule.action === "new_task") return `${t("actionNewTask")}: ${rule.project}`;
  return `${t("actionComment")}: ${rule.task}` + (rule.assign_to ? ` → ${rule.assign_to}` : "");
}

function rulesTab() {
  const owner = may.manage();
  const rows = data.rules.map((rule, index) => h("tr", { "data-rule": rule.name },
    h("td", {}, rule.position), h("td", {}, h("strong", {}, rule.name), h("div", { class: "muted" },
      rule.scope === "global" ? t("scopeGlobal") : rule.gateway || rule.mailbox)),
    h("td", {}, [["subject", rule.subject], ["senders", rule.senders], ["recipients", rule.recipients]]
      .filter(([, v]) => v.length).map(([k, v]) => h("div", {}, `${t(k)}: ${v.join(", ")}`))),
    h("td", {}, ruleAction(rule), rule.delete_after ? h("div", { class: "muted" }, t("deleteAfter")) : null,
      rule.stop ? h("div", { class: "muted" }, t("stop")) : null),
    h("td", {}, h("div", { class: "row" },
      owner ? h("button", { type: "button", "aria-label": `${t("up")}: ${rule.name}`, disabled: index === 0, onclick: () => move(rule, rule.position - 1) }, "↑") : null,
      owner ? h("button", { type: "button", "aria-label": `${t("down")}: ${rule.name}`, disabled: index === data.rules.length - 1, onclick: () => move(rule, rule.position + 1) }, "↓") : null,
      may.editRule(rule) ? h("button", { type: "button", onclick: () => ruleDialog(rule) }, t("edit")) : null,
      owner ? h("button", { type: "button", onclick: () => remove(`${org()}/rules/${encodeURIComponent(rule.name)}`, rule.name) }, t("remove")) : null))));
  return [
    h("table", { class: "rules" }, h("thead", {}, h("tr", {}, [t("position"), t("ruleName"), t("conditions"), t("action"), ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows)),
    owner ? h("div", { class: "actions" }, h("button", { type: "button", onclick: () => ruleDialog(null) }, t("createRule"))) : null,
    owner ? dryRun() : null,
  ];
}

async function move(rule, position) {
  for (const button of document.querySelectorAll("[data-rule] button")) button.disabled = true;  // (one move at a time)
  try { await api("PATCH", `${org()}/rules/${encodeURIComponent(rule.name)}`, { position }); }
  catch (problem) { alert(`${t(`problem-${problem.kind}`)}: ${problem.detail}`); }
  await load();
  render();
}

function taskOptions(selected) {
  return data.tasks.map((task) => [`${task.project}/${task.title}`, `${task.project} / ${task.title}`])
    .concat(selected && !data.tasks.some((task) => `${task.project}/${task.title}` === selected) ? [[selected, selected]] : []);
}

function ruleDialog(rule) {
  const owner = may.manage();
  const scope = rule ? rule.scope : "global";
  const through = select([["global", t("scopeGlobal")], ...data.mailboxes.map((m) => [`mailbox:${m.login}`, `${t("scopeMailbox")}: ${m.address}`]),
    ...data.gateways.map((g) => [`gateway:${g.email}`, `${t("scopeGateway")}: ${g.email}`])],
  scope === "global" ? "global" : `${scope}:${rule.mailbox || rule.gateway}`, { disabled: !owner });
  const action = rule?.action ?? "comment";
  const actionChoice = (value, label) => radio("action", value, label, action === value);
  const fields = [
    field(t("ruleName"), "name", input(rule?.name, { required: true, disabled: !owner })),
    field(t("scope"), "scope", through),
    field(t("subject"), "subject", input(rule?.subject.join(", ")), t("listHint")),
    field(t("senders"), "senders", input(rule?.senders.join(", ")), t("listHint")),
    field(t("recipients"), "recipients", input(rule?.recipients.join(", ")), t("listHint")),
    h("fieldset", {}, h("legend", {}, t("action")), h("p", { class: "error", "data-error-for": "action", hidden: true }),
      actionChoice("comment", t("actionComment")),
      h("div", { class: "sub" }, field(t("taskField"), "task", select(taskOptions(rule?.task), rule?.task ?? undefined))),
      actionChoice("new_task", t("actionNewTask")),
      h("div", { class: "sub" }, field(t("project"), "project", select(data.projects.map((p) => [p.name, p.name]), rule?.project ?? undefined))),
      h("div", { class: "sub" }, field(t("assignTo"), "assign_to", select([["", t("nobody")], ...data.users.map((u) => [u.login, `${u.name} (${u.login})`])], rule?.assign_to ?? ""))),
      actionChoice("ignore", t("actionIgnore"))),
    field(t("deleteAfter"), "delete_after", checkbox(rule?.delete_after)),
    field(t("stop"), "stop", checkbox(rule?.stop)),
    owner ? field(t("editable"), "editable_by_owner", checkbox(rule?.editable_by_owner)) : null,
  ];
  dialog(rule ? `${t("edit")}: ${rule.name}` : t("createRule"), fields, (form) => {
    const chosen = form.querySelector("input[name=action]:checked").value;
    const body = { subject: list(form.subject.value), senders: list(form.senders.value), recipients: list(form.recipients.value),
      action: chosen, task: chosen === "comment" ? form.task.value : null, project: chosen === "new_task" ? form.project.value : null,
      assign_to: chosen === "ignore" ? null : form.assign_to.value || null,
      delete_after: form.delete_after.checked, stop: form.stop.checked };
    if (owner) {
      const [kind, ...rest] = form.scope.value.split(":");
      const name = rest.join(":");
      Object.assign(body, { scope: kind, mailbox: kind === "mailbox" ? name : null, gateway: kind === "gateway" ? name : null,
        editable_by_owner: form.editable_by_owner.checked });
    }
    if (!rule) return api("POST", `${org()}/rules`, { name: form.name.value, ...body });
    if (owner && form.name.value !== rule.name) body.name = form.name.value;
    return api("PATCH", `${org()}/rules/${encodeURIComponent(rule.name)}`, body);
  });
}

function dryRun() {
  const result = h("div", { "aria-live": "polite", id: "explain" });
  const form = h("form", { class: "fields" }, h("h2", {}, t("dryRun")),
    field(t("paste"), "raw", h("textarea", { rows: 8, required: true })),
    field(t("through"), "through", select([["", t("anywhere")], ...data.mailboxes.map((m) => [`mailbox:${m.login}`, m.address]),
      ...data.gateways.map((g) => [`gateway:${g.email}`, g.email])], "")),
    h("p", { class: "error", "data-error-for": "_form", hidden: true, role: "alert" }),
    h("div", {}, h("button", { type: "submit" }, t("check"))), result);
  form.addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const [kind, ...rest] = form.through.value.split(":");
    const body = { raw: form.raw.value };
    if (kind) body[kind] = rest.join(":");
    try {
      const explained = await api("POST", `${org()}/rules/explain`, body);
      fill(result,
        explained.reply_to_task ? h("p", {}, `${t("replyTo")} #${explained.reply_to_task}`) : null,
        h("ul", { class: "plain" }, explained.rules.map((check) => h("li", { "data-check": check.rule, "data-matched": String(check.matched) },
          h("strong", {}, check.rule), `: ${check.matched ? t("matched") : t("notMatched")}`,
          check.why.length ? h("span", { class: "detail" }, ` — ${check.why.join("; ")}`) : null))),
        explained.ignored_by ? h("p", {}, `${t("ignoredBy")}: ${explained.ignored_by}`) : null,
        explained.lands_in.map((landing) => h("p", { "data-lands-in": landing.ref }, `${t("landsIn")}: ${landing.ref} (#${landing.task})`)),
        explained.opens.map((opening) => h("p", {}, `${t("opens")}: ${opening.project} / ${opening.title}`)));
    } catch (problem) { showProblem(form, problem); }
  });
  return form;
}

// --- tasks ---------------------------------------------------------------------------------

function openTask(id) {
  view.tab = "tasks";
  view.task = id;
  render();
}

function commentView(comment) {
  return h("article", { class: "comment", "data-comment": comment.id },
    h("div", { class: "row" }, h("strong", { class: "grow" }, comment.subject || "—"),
      may.manage() ? h("button", { type: "button", onclick: async () => {
        if (!confirm(t("confirmRemove", { name: comment.subject }))) return;
        await api("DELETE", `${org()}/comments/${comment.id}`);
        document.querySelector(`[data-comment="${comment.id}"]`)?.remove();
      } }, t("deleteComment")) : null),
    h("div", { class: "muted" }, `${t("from")}: ${comment.from_name ? `${comment.from_name} <${comment.from}>` : comment.from || "—"} · ${comment.date || comment.created_at}`),
    h("pre", {}, comment.text),
    comment.attachments.length ? h("div", { class: "muted" }, `${t("attachments")}: `,
      comment.attachments.map((a) => `${a.filename || "—"} (${a.content_type}, ${a.size})`).join(", ")) : null);
}

function tasksTab() {
  const tasks = h("ul", { class: "plain", "aria-label": t("tasks") }, data.tasks.map((task) => h("li", {},
    h("button", { type: "button", "data-task": task.id, "aria-current": String(view.task === task.id),
      onclick: () => { view.task = task.id; render(); } }, `${task.project} / ${task.title}`))));
  const comments = h("div", { id: "comments", "aria-live": "polite" });
  const older = h("div", {});
  const more = async (before) => {  // (a page of 50, newest first; "older" asks for the next)
    const page = await api("GET", `${org()}/tasks/${view.task}/comments${before ? `?before=${before}` : ""}`);
    if (!before && !page.length) fill(comments, h("p", { class: "muted" }, t("noComments")));
    comments.append(...page.map(commentView));
    fill(older, page.length === 50 ? h("button", { type: "button", onclick: () => more(page[page.length - 1].id) }, t("older")) : null);
  };
  if (view.task !== null) more(null).catch(() => {});
  const task = data.tasks.find((x) => x.id === view.task);
  return h("div", { class: "columns" }, h("div", { class: "panel" }, h("h2", {}, t("tasks")), tasks),
    h("div", { class: "panel" }, h("h2", {}, task ? `${task.project} / ${task.title}` : t("comments")),
      task ? h("p", { class: "muted" }, t("live")) : null, comments, older));
}

// --- the start -----------------------------------------------------------------------------

setLang(lang);
if (session.token) start().catch(() => { forget(); showLogin(); });
else showLogin();
