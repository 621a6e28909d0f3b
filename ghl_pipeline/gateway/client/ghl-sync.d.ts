// Types for ghl-sync.js, served beside it at /client/ghl-sync.d.ts.

/** Returns the Supabase access token, or null/undefined when nobody is signed in. */
export type GetAccessToken = () => string | null | undefined | Promise<string | null | undefined>;

export interface SyncOptions {
  /** The gateway's base URL, e.g. "https://sync.example.com". */
  gatewayUrl?: string;
  /** e.g. async () => (await supabase.auth.getSession()).data.session?.access_token */
  getAccessToken?: GetAccessToken;
  /** "YYYY-MM-DD" (inclusive days in each project's zone) or an ISO-8601 datetime with offset. */
  dateFrom: string;
  dateTo: string;
  /** One project; omit or null for every active project. */
  projectName?: string | null;
  /** Stops waiting (the run goes on); the promise rejects with an AbortError. */
  signal?: AbortSignal;
}

export interface ProjectCounts {
  new_records: number;
  updated_records: number;
  rejected_records: number;
  [key: string]: number;
}

export interface FailedProject {
  name: string;
  kind: "auth" | "ghl_unavailable" | "bad_data" | "database" | "refused" | "error";
  /** One line for a person, e.g. "GHL token revoked". */
  reason: string;
}

export interface SyncResult {
  runId: string;
  status: "SUCCESS" | "FAILURE" | "CANCELED";
  newRecords: number;
  updatedRecords: number;
  rejectedRecords: number;
  projects: Record<string, ProjectCounts>;
  failedProjects: FailedProject[];
  /** The toast text: "Synced 24 new call records", or the partial wording naming failed projects. */
  message: string;
}

export declare class GhlSyncError extends Error {
  name: "GhlSyncError";
  /** HTTP status from the gateway (401, 400, ...); 0 when it could not be reached; null otherwise. */
  status: number | null;
  /** The request field the gateway refused, e.g. "projectName". */
  field: string | null;
  /** For a run that ended without syncing anything: its result. */
  result: SyncResult | null;
}

/** Launch a sync and resolve when it has finished (success or partial); reject with GhlSyncError. */
export declare function syncFromGhl(options: SyncOptions): Promise<SyncResult>;

/** Defaults for every syncFromGhl call and every <ghl-sync-button>. */
export declare function configureGhlSync(options: { gatewayUrl?: string; getAccessToken?: GetAccessToken }): void;

export interface GhlSyncErrorDetail {
  message: string;
  status: number | null;
  field: string | null;
  result: SyncResult | null;
}

export interface GhlSyncButtonEventMap extends HTMLElementEventMap {
  "ghl-sync-done": CustomEvent<SyncResult>;
  "ghl-sync-error": CustomEvent<GhlSyncErrorDetail>;
}

/** <ghl-sync-button gateway-url date-from date-to project-name label disabled> */
export declare class GhlSyncButton extends HTMLElement {
  getAccessToken: GetAccessToken | null;
  readonly syncing: boolean;
  /** What a click does; resolves with the result, or null when it failed or a sync was running. */
  sync(): Promise<SyncResult | null>;
  addEventListener<K extends keyof GhlSyncButtonEventMap>(
    type: K,
    listener: (this: GhlSyncButton, event: GhlSyncButtonEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof GhlSyncButtonEventMap>(
    type: K,
    listener: (this: GhlSyncButton, event: GhlSyncButtonEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject,
    options?: boolean | EventListenerOptions,
  ): void;
}

declare global {
  interface HTMLElementTagNameMap {
    "ghl-sync-button": GhlSyncButton;
  }
}
