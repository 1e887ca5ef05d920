/**
 * Test certificates: a CA, a server certificate for 127.0.0.1 and localhost signed by it, and
 * another CA, made with openssl in a folder.
 *
 * @module
 */

/** A CA and a certificate for 127.0.0.1 and localhost signed by it, made with openssl. */
export async function makeCertificates(dir: string): Promise<void> {
  const run = async (...args: string[]) => {
    const out = await new Deno.Command("openssl", {
      args,
      cwd: dir,
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
    }
  };
  const days = ["-days", "2"];
  /** `openssl req` arguments for a new P-256 key in NAME.key. */
  const newKey = (name: string) => [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${name}.key`,
  ];
  /** A new key and a self-signed CA certificate for it in NAME.pem. */
  const selfSigned = (name: string, subject: string) =>
    run("req", "-x509", ...newKey(name), "-out", `${name}.pem`, "-subj", subject, ...days);
  await selfSigned("ca", "/CN=dfs test CA");
  await run("req", ...newKey("server"), "-out", "server.csr", "-subj", "/CN=localhost");
  await Deno.writeTextFile(
    `${dir}/ext.cnf`,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
  );
  await run(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    "-extfile",
    "ext.cnf",
    ...days,
  );
  await selfSigned("other", "/CN=another CA");
}
