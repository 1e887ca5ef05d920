import assert from "node:assert/strict";
import { assertS3Error } from "../../tests/_assert.ts";
import { element, escapeXml, renderXml, S3_XMLNS, xmlDocument } from "./xml.ts";
import {
  type ParsedElement,
  parseXml,
  XML_BODY_BYTES_MAX,
  XML_DEPTH_MAX,
  XML_ELEMENTS_MAX,
} from "./xml_parser.ts";
import {
  DELETE_OBJECTS_MAX,
  parseCompleteMultipartUpload,
  parseCreateBucketConfiguration,
  parseDeleteObjects,
  PARTS_MAX,
} from "./xml_requests.ts";
import {
  completeMultipartUploadXml,
  copyObjectResultXml,
  deleteResultXml,
  initiateMultipartUploadXml,
  listAllMyBucketsXml,
  listMultipartUploadsXml,
  listPartsXml,
  locationConstraintXml,
} from "./xml_responses.ts";

const DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n';
const encoder = new TextEncoder();

function malformed(xml: string | Uint8Array, pattern: RegExp) {
  assertS3Error(() => parseXml(xml), "MalformedXML", pattern);
}

/** A parsed tree as nested [name, text | children] for compact comparisons. */
function shape(node: ParsedElement): unknown {
  return node.children.length === 0
    ? [node.name, node.text]
    : [node.name, node.children.map(shape)];
}

// ---------------------------------------------------------------------------------------------
// Building

Deno.test("escapeXml() escapes markup, keeps line ends and replaces what XML cannot carry", () => {
  assert.equal(escapeXml(`a&b<c>d"e'f`), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
  assert.equal(escapeXml("tab\tnl\ncr\r"), "tab&#9;nl&#10;cr&#13;");
  assert.equal(
    escapeXml("nul\u0000 bell\u0007 \uFFFE \uD800x"),
    "nul\uFFFD bell\uFFFD \uFFFD \uFFFDx",
  );
  assert.equal(escapeXml("été 日本 \u{1F600}"), "été 日本 \u{1F600}");
});

Deno.test("element() builds a tree that renders once, skipping false and undefined children", () => {
  const tree = element("A", [
    element("B", "x<y"),
    false,
    undefined,
    null,
    element("C", 42),
    element("D", true),
    element("E"),
    element("F", [element("G", "")]),
  ], { xmlns: S3_XMLNS, "xml:lang": 'a"b' });
  assert.equal(
    renderXml(tree),
    `<A xmlns="${S3_XMLNS}" xml:lang="a&quot;b"><B>x&lt;y</B><C>42</C><D>true</D><E/>` +
      "<F><G></G></F></A>",
  );
  assert.equal(xmlDocument(element("R", "")), `${DECLARATION}<R></R>`);
});

Deno.test("element() refuses names that are not XML names and numbers that are not finite", () => {
  assert.throws(() => element("a b"), /Not an XML element name/);
  assert.throws(() => element("<x>"), /Not an XML element name/);
  assert.throws(() => element("1a"), /Not an XML element name/);
  assert.throws(() => element("a", "", { "x y": "" }), /Not an XML attribute name/);
  assert.throws(() => element("a", NaN), /Not a finite number/);
});

// ---------------------------------------------------------------------------------------------
// Response documents

Deno.test("listAllMyBucketsXml() lists buckets with ISO creation dates and the owner", () => {
  const xml = listAllMyBucketsXml({
    owner: { id: "dfs", displayName: "dfs" },
    buckets: [{ name: "alpha", created: 0 }, { name: "beta", created: 1700000000123 }],
  });
  assert.equal(
    xml,
    DECLARATION +
      `<ListAllMyBucketsResult xmlns="${S3_XMLNS}"><Owner><ID>dfs</ID><DisplayName>dfs</DisplayName>` +
      "</Owner><Buckets><Bucket><Name>alpha</Name><CreationDate>1970-01-01T00:00:00.000Z" +
      "</CreationDate></Bucket><Bucket><Name>beta</Name><CreationDate>2023-11-14T22:13:20.123Z" +
      "</CreationDate></Bucket></Buckets></ListAllMyBucketsResult>",
  );
  const empty = parseXml(listAllMyBucketsXml({ owner: { id: "o" }, buckets: [] }));
  assert.deepEqual(shape(empty), ["ListAllMyBucketsResult", [["Owner", [["ID", "o"]]], [
    "Buckets",
    "",
  ]]]);
});

Deno.test("locationConstraintXml() writes the region, empty for us-east-1", () => {
  assert.equal(
    locationConstraintXml(""),
    `${DECLARATION}<LocationConstraint xmlns="${S3_XMLNS}"></LocationConstraint>`,
  );
  assert.equal(parseXml(locationConstraintXml("eu-west-1")).text, "eu-west-1");
});

Deno.test("copyObjectResultXml() and the upload documents quote ETags", () => {
  assert.equal(
    copyObjectResultXml({ etag: "9b2cf535f27731c974343645a3985328", modified: 1000 }),
    `${DECLARATION}<CopyObjectResult xmlns="${S3_XMLNS}">` +
      "<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag>" +
      "<LastModified>1970-01-01T00:00:01.000Z</LastModified></CopyObjectResult>",
  );
  const initiated = parseXml(
    initiateMultipartUploadXml({ bucket: "b", key: "a&b", uploadId: "u1" }),
  );
  assert.deepEqual(shape(initiated), ["InitiateMultipartUploadResult", [
    ["Bucket", "b"],
    ["Key", "a&b"],
    ["UploadId", "u1"],
  ]]);
  const completed = parseXml(completeMultipartUploadXml({
    location: "http://h/b/k",
    bucket: "b",
    key: "k",
    etag: "abc-2",
  }));
  assert.deepEqual(shape(completed), ["CompleteMultipartUploadResult", [
    ["Location", "http://h/b/k"],
    ["Bucket", "b"],
    ["Key", "k"],
    ["ETag", '"abc-2"'],
  ]]);
});

Deno.test("listPartsXml() lists parts after the marker with the next marker when truncated", () => {
  const doc = parseXml(listPartsXml({
    bucket: "b",
    key: "k",
    uploadId: "u",
    partNumberMarker: 0,
    nextPartNumberMarker: 2,
    maxParts: 2,
    isTruncated: true,
    parts: [
      { partNumber: 1, modified: 0, etag: "e1", size: 5242880 },
      { partNumber: 2, modified: 0, etag: "e2", size: 10 },
    ],
  }));
  assert.equal(doc.name, "ListPartsResult");
  assert.equal(doc.namespace, S3_XMLNS);
  const byName = (name: string) => doc.children.filter((c) => c.name === name);
  assert.equal(byName("NextPartNumberMarker")[0].text, "2");
  assert.equal(byName("IsTruncated")[0].text, "true");
  assert.deepEqual(byName("Part").map(shape), [
    ["Part", [["PartNumber", "1"], ["LastModified", "1970-01-01T00:00:00.000Z"], [
      "ETag",
      '"e1"',
    ], ["Size", "5242880"]]],
    ["Part", [["PartNumber", "2"], ["LastModified", "1970-01-01T00:00:00.000Z"], [
      "ETag",
      '"e2"',
    ], ["Size", "10"]]],
  ]);
});

Deno.test("listMultipartUploadsXml() lists uploads and common prefixes", () => {
  const doc = parseXml(listMultipartUploadsXml({
    bucket: "b",
    keyMarker: "",
    uploadIdMarker: "",
    prefix: "",
    delimiter: "/",
    maxUploads: 1000,
    isTruncated: false,
    uploads: [{ key: "big.bin", uploadId: "u1", initiated: 0 }],
    commonPrefixes: ["dir/"],
  }));
  const names = doc.children.map((c) => c.name);
  assert.deepEqual(names, [
    "Bucket",
    "KeyMarker",
    "UploadIdMarker",
    "Prefix",
    "Delimiter",
    "MaxUploads",
    "IsTruncated",
    "Upload",
    "CommonPrefixes",
  ]);
  assert.deepEqual(shape(doc.children[7]), ["Upload", [
    ["Key", "big.bin"],
    ["UploadId", "u1"],
    ["StorageClass", "STANDARD"],
    ["Initiated", "1970-01-01T00:00:00.000Z"],
  ]]);
});

Deno.test("deleteResultXml() lists deleted keys and errors, only errors when quiet", () => {
  const result = {
    quiet: false,
    deleted: [{ key: "a" }, { key: "b", versionId: "null" }],
    errors: [{ key: "c\u0001", code: "InvalidArgument", message: "Cannot store key" }],
  };
  assert.deepEqual(shape(parseXml(deleteResultXml(result))), ["DeleteResult", [
    ["Deleted", [["Key", "a"]]],
    ["Deleted", [["Key", "b"], ["VersionId", "null"]]],
    ["Error", [["Key", "c\uFFFD"], ["Code", "InvalidArgument"], ["Message", "Cannot store key"]]],
  ]]);
  const quiet = parseXml(deleteResultXml({ ...result, quiet: true }));
  assert.deepEqual(quiet.children.map((c) => c.name), ["Error"]);
  assert.equal(
    deleteResultXml({ quiet: true, deleted: [{ key: "a" }], errors: [] }),
    `${DECLARATION}<DeleteResult xmlns="${S3_XMLNS}"/>`,
  );
});

// ---------------------------------------------------------------------------------------------
// Parsing: what is read

Deno.test("parseXml() reads the declaration, namespaces, whitespace and comments", () => {
  const doc = parseXml(
    `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<!-- a comment -->\n` +
      `<Delete xmlns="${S3_XMLNS}">\n  <Object>\n    <Key>a</Key>\n  </Object>\n` +
      `  <!-- another -->\n</Delete>\n`,
  );
  assert.deepEqual(shape(doc), ["Delete", [["Object", [["Key", "a"]]]]]);
  assert.equal(doc.namespace, S3_XMLNS);
  assert.equal(doc.children[0].namespace, S3_XMLNS);
});

Deno.test("parseXml() resolves prefixed names to their local name and namespace", () => {
  const doc = parseXml(
    `<s3:Delete xmlns:s3="${S3_XMLNS}" xmlns:o="urn:other"><s3:Object/><o:Object/>` +
      `<Object xmlns="urn:third"/></s3:Delete>`,
  );
  assert.equal(doc.name, "Delete");
  assert.deepEqual(doc.children.map((c) => [c.name, c.namespace]), [
    ["Object", S3_XMLNS],
    ["Object", "urn:other"],
    ["Object", "urn:third"],
  ]);
  assert.equal(parseXml("<a/>").namespace, "");
});

Deno.test("parseXml() decodes the five entities, character references and CDATA", () => {
  const doc = parseXml(
    "<K>&amp;&lt;&gt;&quot;&apos; &#65;&#x42;&#x1F600; <![CDATA[<not> &amp; markup]]>!</K>",
  );
  assert.equal(doc.text, `&<>"' AB\u{1F600} <not> &amp; markup!`);
});

Deno.test("parseXml() keeps text exactly, spaces and all, and ends lines as XML does", () => {
  assert.equal(parseXml("<K>  two  spaces  </K>").text, "  two  spaces  ");
  assert.equal(parseXml("<K>a\r\nb\rc&#13;</K>").text, "a\nb\nc\r");
  assert.equal(parseXml('<K a="x&#10;y\tz"/>').text, "");
});

Deno.test("parseXml() takes bytes, with or without a BOM, and text", () => {
  const xml = "<K>é</K>";
  assert.equal(parseXml(encoder.encode(xml)).text, "é");
  assert.equal(parseXml(new Uint8Array([0xef, 0xbb, 0xbf, ...encoder.encode(xml)])).text, "é");
  assert.equal(parseXml(`\uFEFF${xml}`).text, "é");
});

// ---------------------------------------------------------------------------------------------
// Parsing: what is refused

Deno.test("parseXml() refuses a DOCTYPE, so no entity is ever declared or expanded (XXE)", () => {
  malformed(
    '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><d>&x;</d>',
    /DOCTYPE/,
  );
  malformed('<!DOCTYPE lolz [<!ENTITY lol "lol">]><lolz>&lol;</lolz>', /DOCTYPE/);
  malformed("<d><!ENTITY x 'y'></d>", /declarations are not accepted/);
  malformed("<d>&x;</d>", /&x; is not a predefined entity/);
});

Deno.test("parseXml() refuses processing instructions and a misplaced declaration", () => {
  malformed('<?xml-stylesheet href="a"?><d/>', /processing instructions/);
  malformed("<d><?php echo 1 ?></d>", /processing instructions/);
  malformed(' <?xml version="1.0"?><d/>', /processing instructions/);
  malformed('<?xml version="1.1"?><d/>', /only XML version 1\.0/);
  malformed('<?xml version="1.0" encoding="ISO-8859-1"?><d/>', /encoding must be UTF-8/);
  malformed('<?xml encoding="UTF-8"?><d/>', /declaration must be version/);
  malformed('<?xml version="1.0" standalone="maybe"?><d/>', /standalone/);
});

Deno.test("parseXml() refuses documents that are not well-formed, saying where", () => {
  malformed("", /no root element/);
  malformed("   ", /no root element/);
  malformed("text", /expected the root element \(at character 0\)/);
  malformed("<>", /expected an element name/);
  malformed("<a>", /<a> is not closed/);
  malformed("<a></b>", /<\/b> does not match <a> \(at character 3\)/);
  malformed("<a><b></a></b>", /does not match/);
  malformed("<a/><b/>", /content after the root element/);
  malformed("<a/>text", /content after the root element/);
  malformed("<a>x<b/></a>", /<a> mixes text and elements/);
  malformed("<a><b/>x</a>", /<a> mixes text and elements/);
  malformed("<a><![CDATA[x]]><b/></a>", /mixes text and elements/);
  malformed('<a x="1" x="2"/>', /attribute x appears twice/);
  malformed("<a x=1/>", /attribute x is not quoted/);
  malformed('<a x="<"/>', /contains "<"/);
  malformed('<a x="1"y="2"/>', /separated by whitespace/);
  malformed("<a>]]></a>", /"\]\]>"/);
  malformed("<a><!-- x -- y --></a>", /comment contains "--"/);
  malformed("<a><!-- x </a>", /comment is not closed/);
  malformed("<a><![CDATA[x</a>", /CDATA section is not closed/);
  malformed("<a>&amp</a>", /does not start a reference/);
  malformed("<a>AT&T</a>", /does not start a reference/);
  malformed("<p:a/>", /prefix "p" is not declared/);
  malformed('<a p:x="1"/>', /prefix "p" is not declared/);
  malformed('<a xmlns:p=""/>', /declared empty/);
});

Deno.test("parseXml() refuses characters XML does not allow, raw or as references", () => {
  malformed("<a>\u0001</a>", /U\+0001, which XML does not allow/);
  malformed("<a>\uFFFF</a>", /U\+FFFF/);
  malformed("<a>&#0;</a>", /&#0; is not a character XML allows/);
  malformed("<a>&#x1;</a>", /not a character XML allows/);
  malformed("<a>&#xD800;</a>", /not a character XML allows/);
  malformed("<a>&#x110000;</a>", /not a character XML allows/);
  malformed("<a>\uD800</a>", /not valid Unicode/);
  malformed(new Uint8Array([0x3c, 0x61, 0x3e, 0xff, 0x3c, 0x2f, 0x61, 0x3e]), /not valid UTF-8/);
});

Deno.test("parseXml() refuses a body over XML_BODY_BYTES_MAX as MaxMessageLengthExceeded", () => {
  const big = new Uint8Array(XML_BODY_BYTES_MAX + 1).fill(0x20);
  assertS3Error(
    () => parseXml(big),
    "MaxMessageLengthExceeded",
    /8388609 bytes, over the limit of 8388608/,
  );
  assertS3Error(
    () => parseXml("<a>€€</a>", { bytesMax: 10 }),
    "MaxMessageLengthExceeded",
    /13 bytes/,
  );
});

Deno.test("parseXml() refuses nesting deeper than XML_DEPTH_MAX", () => {
  const nested = (depth: number) => "<a>".repeat(depth) + "</a>".repeat(depth);
  assert.equal(parseXml(nested(XML_DEPTH_MAX)).name, "a");
  malformed(nested(XML_DEPTH_MAX + 1), new RegExp(`nest deeper than ${XML_DEPTH_MAX}`));
  // Far deeper than any stack: refused at the limit, no recursion.
  malformed(nested(200_000), /nest deeper/);
});

Deno.test("parseXml() refuses more than XML_ELEMENTS_MAX elements", () => {
  assert.equal(parseXml(`<r>${"<a/>".repeat(XML_ELEMENTS_MAX - 1)}</r>`).children.length, 99_999);
  malformed(`<r>${"<a/>".repeat(XML_ELEMENTS_MAX)}</r>`, /more than 100000 elements/);
});

// ---------------------------------------------------------------------------------------------
// DeleteObjects

Deno.test("parseDeleteObjects() reads what the AWS CLI sends", () => {
  const body = `<?xml version="1.0" encoding="UTF-8"?>
<Delete xmlns="${S3_XMLNS}"><Object><Key>photos/a.jpg</Key></Object><Object><Key>b &amp; c</Key>` +
    `<VersionId>null</VersionId></Object><Quiet>true</Quiet></Delete>`;
  assert.deepEqual(parseDeleteObjects(encoder.encode(body)), {
    quiet: true,
    objects: [{ key: "photos/a.jpg" }, { key: "b & c", versionId: "null" }],
  });
});

Deno.test("parseDeleteObjects() keeps keys exactly and reads conditional fields", () => {
  const body = '<Delete><Object><Key> spaced/ </Key><ETag>"abc"</ETag>' +
    "<LastModifiedTime>2024-01-01T00:00:00Z</LastModifiedTime><Size> 12 </Size></Object>" +
    "<Object><Key></Key></Object></Delete>";
  assert.deepEqual(parseDeleteObjects(body), {
    quiet: false,
    objects: [
      { key: " spaced/ ", etag: "abc", lastModifiedTime: "2024-01-01T00:00:00Z", size: 12 },
      { key: "" },
    ],
  });
  assert.equal(
    parseDeleteObjects("<Delete><Quiet>FALSE</Quiet><Object><Key>k</Key></Object></Delete>").quiet,
    false,
  );
});

Deno.test("parseDeleteObjects() takes DELETE_OBJECTS_MAX objects and refuses one more", () => {
  const objects = (n: number) => "<Object><Key>k</Key></Object>".repeat(n);
  assert.equal(
    parseDeleteObjects(`<Delete>${objects(DELETE_OBJECTS_MAX)}</Delete>`).objects.length,
    1000,
  );
  assertS3Error(
    () => parseDeleteObjects(`<Delete>${objects(DELETE_OBJECTS_MAX + 1)}</Delete>`),
    "MalformedXML",
    /more than 1000 <Object> elements/,
  );
});

Deno.test("parseDeleteObjects() fits the worst legal body: 1000 keys of 1024 escaped quotes", () => {
  const key = '"'.repeat(1024);
  const object = `  <Object>\n    <Key>${"&quot;".repeat(1024)}</Key>\n    <VersionId>${
    "v".repeat(1024)
  }</VersionId>\n  </Object>\n`;
  const body = `${DECLARATION}<Delete xmlns="${S3_XMLNS}">\n  <Quiet>true</Quiet>\n${
    object.repeat(DELETE_OBJECTS_MAX)
  }</Delete>\n`;
  assert.ok(body.length > 7_000_000 && body.length <= XML_BODY_BYTES_MAX, `${body.length}`);
  const parsed = parseDeleteObjects(encoder.encode(body));
  assert.equal(parsed.objects.length, 1000);
  assert.equal(parsed.objects[999].key, key);
});

Deno.test("parseDeleteObjects() refuses bodies that are not a Delete document", () => {
  const refused: [string, RegExp][] = [
    ["<Delete></Delete>", /names no <Object>/],
    ["<Delete><Object></Object></Delete>", /an <Object> has no <Key>/],
    ["<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>", /more than one <Key>/],
    [
      "<Delete><Object><Key>a</Key><Colour>red</Colour></Object></Delete>",
      /does not take <Colour>/,
    ],
    ["<Delete><Object><Key><b>a</b></Key></Object></Delete>", /<Key> in <Object> holds elements/],
    ["<Delete><Quiet>yes</Quiet><Object><Key>a</Key></Object></Delete>", /neither true nor false/],
    ["<Delete><Object><Key>a</Key><Size>-1</Size></Object></Delete>", /not a whole number/],
    ["<Remove><Object><Key>a</Key></Object></Remove>", /root element is <Remove>, not <Delete>/],
    ['<Delete xmlns="urn:x"><Object><Key>a</Key></Object></Delete>', /not <Delete>/],
    [
      `<Delete xmlns="${S3_XMLNS}"><Object xmlns="urn:x"><Key>a</Key></Object></Delete>`,
      /does not take <Object>/,
    ],
    ["<Delete>keys</Delete>", /holds text/],
    ["<Delete><Object><Key>a</Key></Object>", /not closed/],
  ];
  for (const [body, pattern] of refused) {
    assertS3Error(() => parseDeleteObjects(body), "MalformedXML", pattern);
  }
});

// ---------------------------------------------------------------------------------------------
// CompleteMultipartUpload

Deno.test("parseCompleteMultipartUpload() reads parts, unquoting ETags, with checksums", () => {
  const body = `<CompleteMultipartUpload xmlns="${S3_XMLNS}">
  <Part><PartNumber>1</PartNumber><ETag>"a54357aff0632cce46d942af68356b38"</ETag></Part>
  <Part><ETag>&quot;0c78aef83f66abc1fa1e8477f296d394&quot;</ETag><PartNumber> 2 </PartNumber>
    <ChecksumCRC32>AAAAAA==</ChecksumCRC32><ChecksumSHA256>47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=</ChecksumSHA256>
  </Part>
  <Part><PartNumber>10000</PartNumber><ETag>bare</ETag></Part>
</CompleteMultipartUpload>`;
  assert.deepEqual(parseCompleteMultipartUpload(body), [
    { partNumber: 1, etag: "a54357aff0632cce46d942af68356b38", checksums: {} },
    {
      partNumber: 2,
      etag: "0c78aef83f66abc1fa1e8477f296d394",
      checksums: { crc32: "AAAAAA==", sha256: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" },
    },
    { partNumber: 10000, etag: "bare", checksums: {} },
  ]);
});

Deno.test("parseCompleteMultipartUpload() refuses parts out of order as InvalidPartOrder", () => {
  const part = (n: number) => `<Part><PartNumber>${n}</PartNumber><ETag>"e"</ETag></Part>`;
  const doc = (...ns: number[]) =>
    `<CompleteMultipartUpload>${ns.map(part).join("")}</CompleteMultipartUpload>`;
  assertS3Error(
    () => parseCompleteMultipartUpload(doc(1, 3, 2)),
    "InvalidPartOrder",
    /part 2 follows part 3/,
  );
  assertS3Error(
    () => parseCompleteMultipartUpload(doc(1, 1)),
    "InvalidPartOrder",
    /part 1 follows part 1/,
  );
  assertS3Error(
    () => parseCompleteMultipartUpload(doc(0)),
    "InvalidArgument",
    /between 1 and 10000, not 0/,
  );
  assertS3Error(() => parseCompleteMultipartUpload(doc(10001)), "InvalidArgument", /not 10001/);
});

Deno.test("parseCompleteMultipartUpload() refuses bodies that are not such a document", () => {
  const refused: [string, RegExp][] = [
    ["<CompleteMultipartUpload/>", /lists no <Part>/],
    [
      "<CompleteMultipartUpload><Part><ETag>e</ETag></Part></CompleteMultipartUpload>",
      /no <PartNumber>/,
    ],
    [
      "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>",
      /no <ETag>/,
    ],
    [
      "<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>",
      /<PartNumber> is not a whole number/,
    ],
    [
      '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>""</ETag></Part></CompleteMultipartUpload>',
      /<ETag> is empty/,
    ],
    [
      "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>e</ETag><Size>1</Size></Part></CompleteMultipartUpload>",
      /does not take <Size>/,
    ],
    ["<Complete><Part/></Complete>", /not <CompleteMultipartUpload>/],
  ];
  for (const [body, pattern] of refused) {
    assertS3Error(() => parseCompleteMultipartUpload(body), "MalformedXML", pattern);
  }
});

Deno.test("parseCompleteMultipartUpload() takes PARTS_MAX parts with every checksum, not one more", () => {
  const part = (n: number) =>
    `  <Part>\n    <PartNumber>${n}</PartNumber>\n    <ETag>&quot;${
      "f".repeat(32)
    }&quot;</ETag>\n` +
    `    <ChecksumCRC32>AAAAAA==</ChecksumCRC32>\n    <ChecksumCRC32C>AAAAAA==</ChecksumCRC32C>\n` +
    `    <ChecksumCRC64NVME>AAAAAAAAAAA=</ChecksumCRC64NVME>\n` +
    `    <ChecksumSHA1>${"A".repeat(27)}=</ChecksumSHA1>\n` +
    `    <ChecksumSHA256>${"A".repeat(43)}=</ChecksumSHA256>\n  </Part>\n`;
  const doc = (n: number) =>
    `${DECLARATION}<CompleteMultipartUpload xmlns="${S3_XMLNS}">\n${
      Array.from({ length: n }, (_, i) => part(i + 1)).join("")
    }</CompleteMultipartUpload>\n`;
  const body = doc(PARTS_MAX);
  assert.ok(body.length < XML_BODY_BYTES_MAX, `${body.length}`);
  const parts = parseCompleteMultipartUpload(encoder.encode(body));
  assert.equal(parts.length, PARTS_MAX);
  assert.equal(Object.keys(parts[9999].checksums).length, 5);
  assertS3Error(
    () => parseCompleteMultipartUpload(doc(PARTS_MAX + 1)),
    "MalformedXML",
    /more than 10000 <Part>/,
  );
});

// ---------------------------------------------------------------------------------------------
// CreateBucketConfiguration

Deno.test("parseCreateBucketConfiguration() takes an empty body or a location constraint", () => {
  assert.deepEqual(parseCreateBucketConfiguration(new Uint8Array()), {});
  assert.deepEqual(parseCreateBucketConfiguration(" \r\n"), {});
  assert.deepEqual(
    parseCreateBucketConfiguration(
      `<CreateBucketConfiguration xmlns="${S3_XMLNS}"><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>`,
    ),
    { locationConstraint: "eu-west-1" },
  );
  assert.deepEqual(
    parseCreateBucketConfiguration(
      "<CreateBucketConfiguration><LocationConstraint/></CreateBucketConfiguration>",
    ),
    { locationConstraint: "" },
  );
  assert.deepEqual(parseCreateBucketConfiguration("<CreateBucketConfiguration/>"), {});
});

Deno.test("parseCreateBucketConfiguration() refuses directory buckets and malformed bodies", () => {
  assertS3Error(
    () =>
      parseCreateBucketConfiguration(
        "<CreateBucketConfiguration><Location><Type>AvailabilityZone</Type></Location></CreateBucketConfiguration>",
      ),
    "NotImplemented",
    /<Location> is not implemented/,
  );
  assertS3Error(
    () =>
      parseCreateBucketConfiguration(
        "<CreateBucketConfiguration><Region>x</Region></CreateBucketConfiguration>",
      ),
    "MalformedXML",
    /does not take <Region>/,
  );
  assertS3Error(() => parseCreateBucketConfiguration("not xml"), "MalformedXML", /not well-formed/);
  assertS3Error(() => parseCreateBucketConfiguration("<Other/>"), "MalformedXML", /root element/);
});
