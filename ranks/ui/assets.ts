/**
 * The dashboard's page: one HTML, one script and one style sheet, plain files in `assets/`,
 * imported as text so they are part of the module graph. So the page ships inside the program:
 * `deno compile` embeds them with the code (no `--include`), and `./dfs serve` needs no read
 * permission for them, unlike files read at run time; and they stay files an editor and
 * `deno fmt`/`deno lint` see as HTML, JavaScript and CSS, unlike strings inside TypeScript.
 *
 * @module
 */

import page from "./assets/index.html" with { type: "text" };
import script from "./assets/app.js" with { type: "text" };
import style from "./assets/style.css" with { type: "text" };

/** A file of the page. */
export interface Asset {
  body: string;
  contentType: string;
}

/** The page's files by path. */
export const ASSETS: ReadonlyMap<string, Asset> = new Map([
  ["/", { body: page, contentType: "text/html; charset=utf-8" }],
  ["/index.html", { body: page, contentType: "text/html; charset=utf-8" }],
  ["/app.js", { body: script, contentType: "text/javascript; charset=utf-8" }],
  ["/style.css", { body: style, contentType: "text/css; charset=utf-8" }],
]);
