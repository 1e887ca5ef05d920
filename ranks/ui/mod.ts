/**
 * The web dashboard: a page (`assets/`, shipped inside the program) and a JSON API over the store
 * (`api.ts`), behind a login when the server has a token (`dashboard.ts`, `sessions.ts`), on a
 * port of its own (`listener.ts`). `listing.ts` folds names into folders; `limits.ts` holds every
 * bound.
 *
 * @module
 */

export { type UiApiOptions, type UiStore } from "./api.ts";
export {
  Dashboard,
  type DashboardOptions,
  UI_COOKIE_NAME,
  UI_MUTATION_HEADER,
} from "./dashboard.ts";
export { serveUi, type UiOptions, type UiServer } from "./listener.ts";
export * from "./limits.ts";
