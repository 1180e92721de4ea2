import test from "ava";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import sharp from "sharp";
import { ImageHeaderError, parseImageHeader } from "../../src/manifest/image-header.ts";
import { FIXTURES } from "./helpers.ts";

const FORMATS = join(FIXTURES, "formats");

test("container, size and channels agree with sharp for every sample format", async (t) => {
  const modeChannels = { gray: 1, "gray-alpha": 2, rgb: 3, rgba: 4, cmyk: 4 };
  for (const name of await readdir(FORMATS)) {
    const bytes = await readFile(join(FORMATS, name));
    const header = parseImageHeader(bytes);
    const metadata = await sharp(bytes).metadata();
    t.is(header.container as string, metadata.format as string, name);
    t.is(header.width, metadata.width, name);
    t.is(header.height, metadata.height, name);
    t.is(modeChannels[header.mode], metadata.channels, name);
  }
});

test("every proper prefix of an image is reported as truncated", async (t) => {
  for (const name of ["rgb.png", "rgb.jpg", "rgb-progressive.jpg", "rgba.webp"]) {
    const bytes = await readFile(join(FORMATS, name));
    for (let length = 12; length < bytes.length; length += 1) {
      const error = t.throws(
        () => parseImageHeader(bytes.subarray(0, length)),
        undefined,
        `${name} cut at ${length}`,
      );
      t.true(error instanceof ImageHeaderError);
    }
  }
});

test("palette PNGs count as RGB, or RGBA when they carry transparency", async (t) => {
  const pixels = Buffer.alloc(8 * 8 * 4, 200);
  const withAlpha = await sharp(
    pixels.map((v, i) => (i % 4 === 3 ? (i % 8 === 3 ? 0 : 255) : v)),
    {
      raw: { width: 8, height: 8, channels: 4 },
    },
  )
    .png({ palette: true })
    .toBuffer();
  const opaque = await sharp(Buffer.alloc(8 * 8 * 3, 90), {
    raw: { width: 8, height: 8, channels: 3 },
  })
    .png({ palette: true })
    .toBuffer();
  t.is(parseImageHeader(withAlpha).mode, "rgba");
  t.is(parseImageHeader(opaque).mode, "rgb");
});

test("bytes after a JPEG's end marker are accepted; other file types are not images", async (t) => {
  const jpeg = await readFile(join(FORMATS, "gray.jpg"));
  t.is(parseImageHeader(Buffer.concat([jpeg, Buffer.from("trailer")])).mode, "gray");
  for (const bytes of [
    Buffer.alloc(0),
    Buffer.from("GIF89a"),
    Buffer.from("%PDF-1.7\n"),
    Buffer.from("BM...."),
  ]) {
    const error = t.throws(() => parseImageHeader(bytes));
    t.is((error as ImageHeaderError).reason, "not-an-image");
  }
});
