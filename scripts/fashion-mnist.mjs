// Where the embedded default dataset, Fashion-MNIST, comes from. Shared by bootstrap.mjs (plain
// Node, before node_modules exist) and src/env/dataset.ts.
//
// Order: $TAGGANTS_DATA, then Debian's dataset-fashion-mnist package, then a copy downloaded
// earlier into the user cache. The files are checked by the SHA-256 of their *decompressed*
// bytes: gzip headers differ between mirrors (Debian's .gz files are not byte-identical to the
// official ones), the idx content does not.
import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import path from "node:path";
import { createGunzip } from "node:zlib";
import { cacheRoot } from "./python-env.mjs";

export const DEBIAN_DIR = "/usr/share/datasets/fashion-mnist";
export const DEBIAN_PACKAGE = "dataset-fashion-mnist";
export const OFFICIAL_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com";

/** File name → SHA-256 of its decompressed idx bytes. */
export const FILES = {
  "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
  "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
  "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
  "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
};

export function downloadDir() {
  return path.join(cacheRoot(), "data", "fashion-mnist");
}

/** The first candidate folder holding all four files, or undefined. Existence only: cheap. */
export function findFashionMnist() {
  const candidates = [process.env.TAGGANTS_DATA, DEBIAN_DIR, downloadDir()].filter(Boolean);
  return candidates.find((dir) => Object.keys(FILES).every((f) => existsSync(path.join(dir, f))));
}

export async function decompressedSha256(file) {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file).pipe(createGunzip())) hash.update(chunk);
  return hash.digest("hex");
}

export const HOW_TO_GET = [
  "Fashion-MNIST was not found. Any one of these fixes it:",
  `  - on Debian/Ubuntu: sudo apt-get install ${DEBIAN_PACKAGE}   (files land in ${DEBIAN_DIR})`,
  `  - download the four .gz files of ${OFFICIAL_URL}/ into a folder and set TAGGANTS_DATA to it`,
  "  - run `npm run bootstrap` on a machine that can reach that address",
].join("\n");
