import test from "ava";
import { crc32 } from "node:zlib";
import sharp from "sharp";
import {
  decodeImage,
  encodeLike,
  inspectImage,
  signingIneligibility,
} from "../../src/sign/image-codec.ts";
import { estimateJpegQuality, scaleTable } from "../../src/sign/jpeg.ts";
import { splicePngImageData } from "../../src/sign/png.ts";
import { loadFashionSample, perturb, pixelsOf } from "./fixtures.ts";

async function grayPixels(): Promise<Uint8Array> {
  return pixelsOf(await loadFashionSample(1), 0);
}

function rgb(gray: Uint8Array): Uint8Array {
  return Uint8Array.from(
    { length: gray.length * 3 },
    (_, i) => (gray[Math.floor(i / 3)]! + 40 * (i % 3)) % 256,
  );
}

test("the standard luminance table at quality 50 is Annex K's and quality 100 is all ones", (t) => {
  const annexK = [16, 11, 10, 16, 24, 40, 51, 61];
  t.deepEqual(scaleTable(annexK, 50), annexK);
  t.deepEqual(
    scaleTable(annexK, 100),
    annexK.map(() => 1),
  );
  // Quality 25: scale 200 %; quality 75: scale 50 % with rounding half up.
  t.deepEqual(scaleTable([16, 11], 25), [32, 22]);
  t.deepEqual(scaleTable([16, 11], 75), [8, 6]);
});

for (const quality of [20, 50, 75, 83, 90, 95]) {
  test(`the quality of a JPEG saved at ${quality} is recovered exactly from its tables`, async (t) => {
    const pixels = rgb(await grayPixels());
    const jpeg = await sharp(pixels, { raw: { width: 28, height: 28, channels: 3 } })
      .jpeg({ quality })
      .toBuffer();
    t.deepEqual(estimateJpegQuality(jpeg), { quality, exact: true });
  });
}

test("a signed JPEG carries exactly the original's metadata segments", async (t) => {
  const pixels = rgb(await grayPixels());
  const original = new Uint8Array(
    await sharp(pixels, { raw: { width: 28, height: 28, channels: 3 } })
      .jpeg({ quality: 88, progressive: true })
      .withExif({ IFD0: { Copyright: "Alice", Software: "camera 1.0" } })
      .toBuffer(),
  );
  const format = await inspectImage(original);
  const decoded = await decodeImage(original, 3);
  const signed = await encodeLike({
    original,
    format,
    pixels: { ...decoded, data: perturb(decoded.data, 8, 1) },
  });
  t.deepEqual(metadataSegments(signed), metadataSegments(original));
  t.true(metadataSegments(original).length > 0);
  const after = await inspectImage(signed);
  t.deepEqual(after, format);
  t.true(after.interlaced);
});

test("a signed PNG keeps the original's ancillary chunks in their order", async (t) => {
  const gray = await grayPixels();
  const plain = new Uint8Array(
    await sharp(gray, { raw: { width: 28, height: 28, channels: 1 } })
      .toColourspace("b-w")
      .png()
      .toBuffer(),
  );
  const original = insertTextChunk(plain, "Source", "Alice's camera");
  const format = await inspectImage(original);
  const crafted = perturb(gray, 16, 3);
  const signed = await encodeLike({
    original,
    format,
    pixels: { data: crafted, channels: 1, height: 28, width: 28 },
  });
  t.deepEqual(
    chunkTypes(signed).filter((type) => type !== "IDAT"),
    chunkTypes(original).filter((type) => type !== "IDAT"),
  );
  t.true(chunkTypes(signed).includes("tEXt"));
  t.deepEqual((await decodeImage(signed, 1)).data, crafted);
});

test("splicing refuses a PNG whose header the encoder changed", async (t) => {
  const gray = await grayPixels();
  const original = new Uint8Array(
    await sharp(gray, { raw: { width: 28, height: 28, channels: 1 } })
      .toColourspace("b-w")
      .png()
      .toBuffer(),
  );
  const encoded = new Uint8Array(
    await sharp(rgb(gray), { raw: { width: 28, height: 28, channels: 3 } })
      .png()
      .toBuffer(),
  );
  t.throws(() => splicePngImageData({ original, encoded }), {
    message: /changed the image header/,
  });
});

test("palette and 16-bit PNG, lossy WebP and channel mismatches are not eligible for signing", async (t) => {
  const gray = await grayPixels();
  const image = () => sharp(rgb(gray), { raw: { width: 28, height: 28, channels: 3 } });
  const palette = await inspectImage(await image().png({ palette: true }).toBuffer());
  const deep = await inspectImage(await image().toColourspace("rgb16").png().toBuffer());
  const lossy = await inspectImage(await image().webp({ quality: 80 }).toBuffer());
  const lossless = await inspectImage(await image().webp({ lossless: true }).toBuffer());
  t.regex(signingIneligibility(palette, 3)!, /palette/);
  t.regex(signingIneligibility(deep, 3)!, /16-bit/);
  t.regex(signingIneligibility(lossy, 3)!, /lossy WebP/);
  t.is(signingIneligibility(lossless, 3), undefined);
  t.regex(signingIneligibility(lossless, 1)!, /3 colour channels where the taggants have 1/);
});

test("an RGBA PNG keeps its alpha channel when its colour channels are signed", async (t) => {
  const gray = await grayPixels();
  const rgba = Uint8Array.from({ length: 28 * 28 * 4 }, (_, i) =>
    i % 4 === 3 ? (i * 7) % 256 : gray[Math.floor(i / 4)]!,
  );
  const original = new Uint8Array(
    await sharp(rgba, { raw: { width: 28, height: 28, channels: 4 } })
      .png()
      .toBuffer(),
  );
  const format = await inspectImage(original);
  const decoded = await decodeImage(original, 3);
  const signed = await encodeLike({
    original,
    format,
    pixels: { ...decoded, data: perturb(decoded.data, 4, 2) },
  });
  const alphaBefore = await sharp(original).extractChannel("alpha").raw().toBuffer();
  const alphaAfter = await sharp(signed).extractChannel("alpha").raw().toBuffer();
  t.true(alphaBefore.equals(alphaAfter));
  t.deepEqual(await inspectImage(signed), format);
});

function metadataSegments(jpeg: Uint8Array): string[] {
  const segments: string[] = [];
  let offset = 2;
  while (jpeg[offset + 1] !== 0xda) {
    const marker = jpeg[offset + 1]!;
    const length = (jpeg[offset + 2]! << 8) | jpeg[offset + 3]!;
    if ((marker >= 0xe0 && marker <= 0xef) || marker === 0xfe) {
      segments.push(Buffer.from(jpeg.subarray(offset, offset + 2 + length)).toString("hex"));
    }
    offset += 2 + length;
  }
  return segments;
}

function chunkTypes(png: Uint8Array): string[] {
  const types: string[] = [];
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  for (let offset = 8; offset < png.length; offset += 12 + view.getUint32(offset)) {
    types.push(String.fromCharCode(...png.subarray(offset + 4, offset + 8)));
  }
  return types;
}

/** A tEXt chunk inserted right after IHDR. */
function insertTextChunk(png: Uint8Array, keyword: string, text: string): Uint8Array {
  const body = Buffer.concat([
    Buffer.from("tEXt"),
    Buffer.from(keyword, "latin1"),
    Buffer.of(0),
    Buffer.from(text, "latin1"),
  ]);
  const chunk = Buffer.alloc(body.length + 8);
  chunk.writeUInt32BE(body.length - 4, 0);
  body.copy(chunk, 4);
  chunk.writeUInt32BE(crc32(body), body.length + 4);
  const afterHeader = 8 + 25;
  return Buffer.concat([png.subarray(0, afterHeader), chunk, png.subarray(afterHeader)]);
}
