import test, { type ExecutionContext } from "ava";
import { copyFile, mkdir, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildManifest } from "../../src/manifest/index.ts";
import { UsageError } from "../../src/errors.ts";
import { FIXTURES, copyFixture } from "./helpers.ts";
import { temporaryFolder } from "../helpers/temporary.ts";

async function expectUsageError(
  t: ExecutionContext,
  root: string,
  code: string,
  mention?: string,
): Promise<void> {
  const error = await t.throwsAsync(buildManifest({ root, out: `${root}.manifest` }));
  t.true(error instanceof UsageError, String(error));
  t.is((error as UsageError).code, code, error?.message);
  if (mention) t.true(error!.message.includes(mention), error!.message);
}

test("an empty class folder is refused, naming the folder", async (t) => {
  const root = await copyFixture(t, "imagefolder");
  await mkdir(join(root, "train", "Zebra"));
  await expectUsageError(t, root, "dataset-empty-class", join(root, "train", "Zebra"));
});

test("a non-image file in a class folder is refused, naming the file", async (t) => {
  const root = await copyFixture(t, "imagefolder");
  await writeFile(join(root, "train", "Bag", "notes.txt"), "these are not pixels\n");
  await expectUsageError(t, root, "image-not-an-image", "notes.txt");
});

test("a GIF, which taggants does not read, is refused as not an image", async (t) => {
  const root = await copyFixture(t, "imagefolder");
  await writeFile(
    join(root, "train", "Bag", "anim.gif"),
    Buffer.from("GIF89a\x01\x00\x01\x00", "latin1"),
  );
  await expectUsageError(t, root, "image-not-an-image", "anim.gif");
});

for (const name of ["rgb.png", "rgb.jpg", "rgba.webp"]) {
  test(`a truncated image (${name}) is refused`, async (t) => {
    const root = await copyFixture(t, "imagefolder");
    const bytes = await readFile(join(FIXTURES, "formats", name));
    await writeFile(
      join(root, "test", "Bag", `cut-${name}`),
      bytes.subarray(0, Math.floor(bytes.length * 0.7)),
    );
    await expectUsageError(t, root, "image-truncated", `cut-${name}`);
  });
}

test("an unreadable image (a dangling link) is refused", async (t) => {
  const root = await copyFixture(t, "imagefolder");
  await symlink(join(root, "nowhere.png"), join(root, "train", "Bag", "gone.png"));
  await expectUsageError(t, root, "image-unreadable", "gone.png");
});

test("a dataset with fewer than two classes is refused", async (t) => {
  const root = join(await temporaryFolder(t, "taggants-manifest-"), "one-class");
  await mkdir(join(root, "only"), { recursive: true });
  await copyFile(join(FIXTURES, "formats", "rgb.png"), join(root, "only", "a.png"));
  await expectUsageError(t, root, "dataset-too-few-classes");
  const empty = join(await temporaryFolder(t, "taggants-manifest-"), "nothing");
  await mkdir(empty);
  await expectUsageError(t, empty, "dataset-too-few-classes");
});

test("a root holding only train/ is a split folder without its pair, not a dataset of one class", async (t) => {
  const root = join(await temporaryFolder(t, "taggants-manifest-"), "split-alone");
  for (const name of ["Bag", "Coat"]) {
    await mkdir(join(root, "train", name), { recursive: true });
    await copyFile(join(FIXTURES, "formats", "rgb.png"), join(root, "train", name, "a.png"));
  }
  await expectUsageError(
    t,
    root,
    "dataset-split-alone",
    `give ${join(root, "train")} as the dataset`,
  );
  const error = await t.throwsAsync(buildManifest({ root, out: `${root}.manifest` }));
  t.regex(error!.message, /<class>\/<images>/);
  t.notRegex(error!.message, /class folder \(train\)/);
});

test("train/ beside a folder other than val/ or test/ is refused, not read as a class", async (t) => {
  const root = join(await temporaryFolder(t, "taggants-manifest-"), "train-and-extra");
  for (const folder of ["train/Bag", "train/Coat", "extra"]) {
    await mkdir(join(root, folder), { recursive: true });
    await copyFile(join(FIXTURES, "formats", "rgb.png"), join(root, folder, "a.png"));
  }
  await expectUsageError(t, root, "dataset-split-alone", "train/ beside extra/");
});

test("val/ and test/ without train/ are refused as split folders without a training split", async (t) => {
  const root = join(await temporaryFolder(t, "taggants-manifest-"), "no-train");
  for (const folder of ["val/Bag", "val/Coat", "test/Bag", "test/Coat"]) {
    await mkdir(join(root, folder), { recursive: true });
    await copyFile(join(FIXTURES, "formats", "rgb.png"), join(root, folder, "a.png"));
  }
  await expectUsageError(t, root, "dataset-split-alone", "test/ and val/ but no train/");
});

test("idx files next to class folders are refused as a mixed layout", async (t) => {
  const root = await copyFixture(t, "fashion-mnist-idx");
  await mkdir(join(root, "Bag"));
  await copyFile(join(FIXTURES, "formats", "rgb.png"), join(root, "Bag", "a.png"));
  await expectUsageError(t, root, "dataset-mixed-layout");
});

test("a truncated idx file is refused", async (t) => {
  const root = await copyFixture(t, "fashion-mnist-idx");
  const path = join(root, "t10k-images-idx3-ubyte.gz");
  const bytes = await readFile(path);
  await writeFile(path, bytes.subarray(0, bytes.length - 200));
  await expectUsageError(t, root, "idx-invalid", "t10k-images-idx3-ubyte.gz");
});

test("idx images without their labels file are refused", async (t) => {
  const root = await copyFixture(t, "fashion-mnist-idx");
  await rm(join(root, "t10k-labels-idx1-ubyte.gz"));
  await expectUsageError(t, root, "dataset-idx-incomplete");
});

test("a path that is not a folder is refused", async (t) => {
  const folder = await temporaryFolder(t, "taggants-manifest-");
  await expectUsageError(t, join(folder, "missing"), "dataset-not-found");
  await writeFile(join(folder, "file"), "x");
  await expectUsageError(t, join(folder, "file"), "dataset-not-found");
});

test("a failed scan leaves no manifest files behind", async (t) => {
  const root = await copyFixture(t, "imagefolder");
  await writeFile(join(root, "train", "Trouser", "zz.txt"), "not an image");
  await t.throwsAsync(buildManifest({ root, out: `${root}.manifest` }));
  const left = (await readdir(join(root, ".."))).filter((name) => name !== "imagefolder");
  t.deepEqual(left, []);
});
