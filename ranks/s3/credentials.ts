/**
 * The S3 gateway's credentials: an access key id and its secret per line of the file
 * `--s3-credentials-file` names (`ACCESS_KEY_ID:SECRET`; blank lines and lines starting with `#`
 * are skipped). Pure: the CLI reads the file.
 *
 * @module
 */

import { DfsError } from "../../protocol/errors.ts";

/** Largest credentials file read. */
export const CREDENTIALS_FILE_BYTES_MAX = 1024 * 1024;
/** Most credentials one file may hold. */
export const CREDENTIALS_MAX = 1000;
/** An access key id: 3 to 128 letters and digits (AWS's are 16 to 128 upper-case ones). */
export const ACCESS_KEY_ID_PATTERN = /^[A-Za-z0-9]{3,128}$/;
/** Shortest secret accepted (MinIO's rule: 8). */
export const SECRET_KEY_BYTES_MIN = 8;
/** Longest secret accepted. */
export const SECRET_KEY_BYTES_MAX = 128;

/**
 * Reads credentials from the text of a credentials file.
 *
 * @throws {DfsError} `INVALID_REQUEST` naming the line that is not `ACCESS_KEY_ID:SECRET`, a key id
 *   given twice, a secret out of bounds, or a file with none.
 */
export function parseCredentials(text: string): Map<string, string> {
  const credentials = new Map<string, string>();
  const lines = text.split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const at = `line ${index + 1}`;
    const colon = line.indexOf(":");
    const id = colon < 0 ? line : line.slice(0, colon);
    const secret = colon < 0 ? "" : line.slice(colon + 1);
    if (colon < 0 || !ACCESS_KEY_ID_PATTERN.test(id)) {
      throw invalid(`${at} is not ACCESS_KEY_ID:SECRET (a key id of 3 to 128 letters and digits)`);
    }
    const bytes = new TextEncoder().encode(secret).length;
    if (bytes < SECRET_KEY_BYTES_MIN || bytes > SECRET_KEY_BYTES_MAX || /\s/.test(secret)) {
      throw invalid(
        `${at}: the secret of ${id} must be ${SECRET_KEY_BYTES_MIN} to ${SECRET_KEY_BYTES_MAX} ` +
          "bytes without white space",
      );
    }
    if (credentials.has(id)) throw invalid(`${at}: access key id ${id} is given twice`);
    if (credentials.size >= CREDENTIALS_MAX) {
      throw invalid(`it holds more than ${CREDENTIALS_MAX} credentials`);
    }
    credentials.set(id, secret);
  }
  if (credentials.size === 0) throw invalid("it holds no ACCESS_KEY_ID:SECRET line");
  return credentials;
}

function invalid(why: string): DfsError {
  return new DfsError("INVALID_REQUEST", `The S3 credentials file is not usable: ${why}`);
}
