/**
 * The dashboard's limits, each named with its unit. Pure: no I/O.
 *
 * @module
 */

/** Bytes of a request's URL and headers together, checked before anything else. */
export const UI_REQUEST_HEAD_BYTES_MAX = 64 * 1024;

/** Bytes of a login request's body (a JSON object holding the token). */
export const UI_LOGIN_BODY_BYTES_MAX = 8 * 1024;

/** Rows (files and folders) one list page answers, at most; a page asks for fewer with `limit`. */
export const UI_LIST_PAGE_MAX = 1000;
/** Rows one list page answers when it does not say. */
export const UI_LIST_PAGE_DEFAULT = 200;
/** Names asked of the store in one `list` call while folding a page's folders. */
export const UI_LIST_SCAN_ENTRIES_MAX = 1000;
/**
 * Store `list` calls one page makes, at most: a page of many large folders may end before it is
 * full (with a cursor to go on from), so one request never walks the whole store.
 */
export const UI_LIST_SCANS_MAX = 8;

/** Logged-in browser sessions held at once; a new login past it ends the oldest. */
export const UI_SESSIONS_MAX = 256;
/** A session unused for this long ends (ms: 2 hours). */
export const UI_SESSION_IDLE_MS = 2 * 60 * 60 * 1000;
/** A session ends this long after its login however much it is used (ms: 24 hours). */
export const UI_SESSION_LIFETIME_MS = 24 * 60 * 60 * 1000;
/** Random bytes of a session id. */
export const UI_SESSION_ID_BYTES = 32;

/**
 * Uploads through the dashboard in progress at once: the store's own limit is server-wide, and
 * this keeps the dashboard from taking all of it.
 */
export const UI_UPLOADS_INFLIGHT_MAX = 8;
/** An upload body that brings no bytes for this long fails, storing nothing (ms). */
export const UI_BODY_STALL_TIMEOUT_MS = 60_000;
