import test from "ava";
import { copyFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { buildManifest, verifyManifest } from "../../src/manifest/index.ts";
import { copyFixture } from "./helpers.ts";

test("verify reports a changed, a missing and an added file and nothing else", async (t) => {
  const root = await copyFixture(t, "imagefolder");
  const summary = await buildManifest({ root, out: `${root}.manifest` });
  t.deepEqual(await verifyManifest({ root, manifest: summary.summaryPath }), {
    changed: [],
    missing: [],
    added: [],
  });

  const bag = join(root, "train", "Bag");
  await copyFile(join(bag, "00100.png"), join(bag, "00023.png")); // changed content
  await rm(join(root, "test", "Coat", "00006.png")); // missing
  await copyFile(join(bag, "00100.png"), join(root, "train", "Dress", "extra.png")); // added
  t.deepEqual(await verifyManifest({ root, manifest: summary.summaryPath }), {
    changed: ["train/Bag/00023.png"],
    missing: ["test/Coat/00006.png"],
    added: ["train/Dress/extra.png"],
  });
});

test("verify sees a file moved to another class as missing from one and added to the other", async (t) => {
  const root = await copyFixture(t, "imagefolder");
  const summary = await buildManifest({ root, out: `${root}.manifest` });
  await copyFile(join(root, "train", "Bag", "00100.png"), join(root, "train", "Coat", "00100.png"));
  await rm(join(root, "train", "Bag", "00100.png"));
  const result = await verifyManifest({ root, manifest: summary.summaryPath });
  t.deepEqual(result, {
    changed: [],
    missing: ["train/Bag/00100.png"],
    added: ["train/Coat/00100.png"],
  });
});

test("verify finds an unchanged idx dataset unchanged", async (t) => {
  const root = await copyFixture(t, "fashion-mnist-idx");
  const summary = await buildManifest({ root, out: `${root}.manifest` });
  t.deepEqual(await verifyManifest({ root, manifest: summary.summaryPath }), {
    changed: [],
    missing: [],
    added: [],
  });
});
