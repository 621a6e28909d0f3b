// The "Sync from GHL" button's client, served by the ghl-pipeline gateway at /client/ghl-sync.js.
//
// An ES module with no dependencies and no build step: import it from the gateway (or copy it, with
// ghl-sync.d.ts, into the dashboard). It exports
//   syncFromGhl({ gatewayUrl, getAccessToken, dateFrom, dateTo, projectName, signal }) -> Promise<result>
//   configureGhlSync({ gatewayUrl, getAccessToken })   defaults for every call and every button
//   <ghl-sync-button>                                  a button that runs syncFromGhl and fires events
// Tokens are only ever sent in the Authorization header; this file never logs or stores them.

const WAIT_SECONDS = 25; // the gateway answers a long poll as soon as the run ends (it allows 30)
const NETWORK_RETRIES = 3; // a long poll cut by a proxy or a flaky network is asked again
const RETRY_DELAY_MS = 1000;
const SIGN_IN_AGAIN = "Please sign in again";

let defaults = {};

/** Defaults merged under every syncFromGhl call and every <ghl-sync-button> (e.g. getAccessToken). */
export function configureGhlSync(options = {}) {
  defaults = { ...defaults, ...options };
}

/** A sync that did not happen or did not finish, with a message a person can act on. */
export class GhlSyncError extends Error {
  constructor(message, { status = null, field = null, result = null } = {}) {
    super(message);
    this.name = "GhlSyncError";
    this.status = status; // the HTTP status, when the gateway answered
    this.field = field; // the request field the gateway refused (e.g. "projectName")
    this.result = result; // for a run that ended failed: the same shape syncFromGhl resolves with
  }
}

/**
 * Launch a sync through the gateway and wait for it to finish.
 *
 * Resolves when the run ended and synced something (outcome "success" or "partial"); `message` is the
 * toast text. Rejects with a GhlSyncError when nothing was synced: not signed in, a bad request
 * ("Unknown project: ..."), the gateway unreachable, or the run failed (its `result` is attached).
 * Aborting `signal` stops waiting (the run itself goes on) and rejects with an AbortError.
 */
export async function syncFromGhl(options = {}) {
  const { gatewayUrl, getAccessToken, dateFrom, dateTo, projectName = null, signal } = {
    ...defaults,
    ...options,
  };
  if (!gatewayUrl) throw new GhlSyncError("The sync button is not set up: gateway-url is missing");
  if (typeof getAccessToken !== "function") {
    throw new GhlSyncError("The sync button is not set up: getAccessToken is missing");
  }
  const base = String(gatewayUrl).replace(/\/+$/, "");
  const body = { dateFrom, dateTo };
  if (projectName) body.projectName = projectName;
  const launched = await request(base, "/sync", getAccessToken, signal, {
    method: "POST",
    body: JSON.stringify(body),
  });
  // 202 for a new run, 200 with alreadyRunning for one in flight: wait for it either way.
  const path = `/sync/${encodeURIComponent(launched.runId)}?wait=${WAIT_SECONDS}`;
  let run;
  for (let failures = 0; ; ) {
    try {
      run = await request(base, path, getAccessToken, signal, { method: "GET" });
    } catch (error) {
      if (!isRetryable(error) || ++failures > NETWORK_RETRIES) throw error;
      await sleep(RETRY_DELAY_MS, signal);
      continue;
    }
    failures = 0;
    if (run.done) break;
  }
  const result = {
    runId: run.runId,
    status: run.status,
    newRecords: run.newRecords ?? 0,
    updatedRecords: run.updatedRecords ?? 0,
    rejectedRecords: run.rejectedRecords ?? 0,
    projects: run.projects ?? {},
    failedProjects: run.failedProjects ?? [],
    message: run.message ?? (run.status === "SUCCESS" ? "Sync finished" : "Sync failed"),
  };
  if (run.outcome === "failed" || (!run.outcome && run.status !== "SUCCESS")) {
    throw new GhlSyncError(result.message, { result });
  }
  return result;
}

async function request(base, path, getAccessToken, signal, init) {
  let token;
  try {
    token = await getAccessToken();
  } catch {
    token = null; // e.g. Supabase could not refresh the session
  }
  if (!token || typeof token !== "string") throw new GhlSyncError(SIGN_IN_AGAIN, { status: 401 });
  const headers = { Authorization: `Bearer ${token}` };
  if (init.body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(base + path, { ...init, headers, signal, cache: "no-store", mode: "cors" });
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new GhlSyncError("Could not reach the sync service; check your connection and try again", {
      status: 0,
    });
  }
  let answer = {};
  try {
    answer = await response.json();
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
  }
  if (response.ok) return answer;
  const reason = typeof answer.error === "string" ? answer.error : null;
  const field = typeof answer.field === "string" ? answer.field : null;
  if (response.status === 401) throw new GhlSyncError(SIGN_IN_AGAIN, { status: 401, field });
  if (response.status === 403) {
    throw new GhlSyncError(reason ?? "Your account may not sync from GHL", { status: 403, field });
  }
  if (response.status === 404) {
    throw new GhlSyncError("The sync run was not found; try again", { status: 404, field });
  }
  if (response.status < 500 && reason) throw new GhlSyncError(reason, { status: response.status, field });
  // 5xx texts are for operators (they can name Dagster's internals); the person gets what to do.
  throw new GhlSyncError(
    `The sync service is unavailable right now (HTTP ${response.status}); try again shortly`,
    { status: response.status, field },
  );
}

function isRetryable(error) {
  return error instanceof GhlSyncError && (error.status === 0 || error.status === 502 || error.status === 504);
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? new DOMException("Aborted", "AbortError"));
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(signal.reason ?? new DOMException("Aborted", "AbortError"));
      },
      { once: true },
    );
  });
}

const STYLE = `
:host { display: inline-block; }
:host([hidden]) { display: none; }
button {
  display: inline-flex; align-items: center; gap: 0.5em;
  font: inherit; padding: 0.4em 0.9em; border-radius: 0.375rem; cursor: pointer;
  border: 1px solid var(--ghl-sync-border, #d1d5db);
  background: var(--ghl-sync-background, #fff); color: var(--ghl-sync-color, #111827);
}
button:hover:not(:disabled) { background: var(--ghl-sync-hover-background, #f3f4f6); }
button:disabled { cursor: progress; opacity: 0.7; }
svg { width: 1em; height: 1em; flex: none; }
:host([syncing]) svg { animation: ghl-sync-spin 0.9s linear infinite; }
@keyframes ghl-sync-spin { to { transform: rotate(360deg); } }
@media (prefers-reduced-motion: reduce) { :host([syncing]) svg { animation-duration: 2.5s; } }
`;

const ICON = `<svg part="icon" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"
  stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">
  <path d="M21 12a9 9 0 1 1-2.64-6.36"/><polyline points="21 3 21 9 15 9"/></svg>`;

const BaseElement = globalThis.HTMLElement ?? class {};

/**
 * <ghl-sync-button gateway-url="…" date-from="…" date-to="…" project-name="…" label="…">
 * Set the `getAccessToken` property (or configureGhlSync). While a sync runs the button is disabled,
 * the host has the `syncing` attribute and the icon spins; a second click does nothing. Fires
 * `ghl-sync-done` (detail: the result) and `ghl-sync-error` (detail: { message, status, field, result }),
 * both bubbling and composed.
 */
export class GhlSyncButton extends BaseElement {
  static observedAttributes = ["label", "disabled"];

  #getAccessToken = null;
  #syncing = false;
  #button;
  #label;

  constructor() {
    super();
    const root = this.attachShadow({ mode: "open" });
    root.innerHTML = `<style>${STYLE}</style><button part="button" type="button">${ICON}<span part="label"></span></button>`;
    this.#button = root.querySelector("button");
    this.#label = root.querySelector("span");
    this.#label.textContent = "Sync from GHL";
    this.#button.addEventListener("click", () => {
      this.sync();
    });
  }

  connectedCallback() {
    // React (and others) may set the property before this element was defined: take it over.
    if (Object.prototype.hasOwnProperty.call(this, "getAccessToken")) {
      const value = this.getAccessToken;
      delete this.getAccessToken;
      this.getAccessToken = value;
    }
    this.#render();
  }

  attributeChangedCallback() {
    this.#render();
  }

  get getAccessToken() {
    return this.#getAccessToken;
  }

  set getAccessToken(value) {
    this.#getAccessToken = typeof value === "function" ? value : null;
  }

  /** True while a sync started by this button runs. */
  get syncing() {
    return this.#syncing;
  }

  /** Run a sync with the current attributes (what a click does); resolves with the result or null. */
  async sync() {
    if (this.#syncing || this.hasAttribute("disabled")) return null;
    this.#syncing = true;
    this.#render(); // synchronously, so a second click lands on a disabled button
    try {
      const result = await syncFromGhl({
        gatewayUrl: this.getAttribute("gateway-url") || undefined,
        getAccessToken: this.#getAccessToken ?? undefined,
        dateFrom: this.getAttribute("date-from"),
        dateTo: this.getAttribute("date-to"),
        projectName: this.getAttribute("project-name") || null,
      });
      this.#emit("ghl-sync-done", result);
      return result;
    } catch (error) {
      const detail = {
        message: error?.message || "Sync failed",
        status: error?.status ?? null,
        field: error?.field ?? null,
        result: error?.result ?? null,
      };
      this.#emit("ghl-sync-error", detail);
      return null;
    } finally {
      this.#syncing = false;
      this.#render();
    }
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }

  #render() {
    if (!this.#button) return;
    const busy = this.#syncing;
    this.#button.disabled = busy || this.hasAttribute("disabled");
    this.#label.textContent = busy ? "Syncing…" : this.getAttribute("label") || "Sync from GHL";
    if (!this.isConnected) return; // a constructor may not add attributes to its host
    this.toggleAttribute("syncing", busy);
    this.setAttribute("aria-busy", String(busy));
  }
}

if (globalThis.customElements && !globalThis.customElements.get("ghl-sync-button")) {
  globalThis.customElements.define("ghl-sync-button", GhlSyncButton);
}
