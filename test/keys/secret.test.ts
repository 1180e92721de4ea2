import test from "ava";
import { chmod, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createKeySecret, loadKeySecret } from "../../src/keys/secret.ts";
import { temporaryFolder } from "../helpers/temporary.ts";

test("a new key file holds 256 random bits and only its owner may read it", async (t) => {
  const path = join(await temporaryFolder(t, "taggants-keys-"), "alice.key");
  await createKeySecret(path);
  t.is((await stat(path)).mode & 0o777, 0o600);
  t.regex(await readFile(path, "utf8"), /^[0-9a-f]{64}\n$/);
  const secret = await loadKeySecret(path);
  t.is(secret.length, 32);
});

test("two key files get different secrets", async (t) => {
  const folder = await temporaryFolder(t, "taggants-keys-");
  await createKeySecret(join(folder, "a.key"));
  await createKeySecret(join(folder, "b.key"));
  t.notDeepEqual(
    await loadKeySecret(join(folder, "a.key")),
    await loadKeySecret(join(folder, "b.key")),
  );
});

test("creating a key file refuses to overwrite an existing one", async (t) => {
  const path = join(await temporaryFolder(t, "taggants-keys-"), "alice.key");
  await createKeySecret(path);
  const before = await readFile(path, "utf8");
  const error = await t.throwsAsync(createKeySecret(path));
  t.is((error as { code?: string }).code, "key-file-exists");
  t.is(await readFile(path, "utf8"), before);
});

test("a key file readable by others is refused with the chmod that fixes it", async (t) => {
  const path = join(await temporaryFolder(t, "taggants-keys-"), "alice.key");
  await createKeySecret(path);
  for (const mode of [0o644, 0o640, 0o604, 0o660]) {
    await chmod(path, mode);
    const error = await t.throwsAsync(loadKeySecret(path));
    t.is((error as { code?: string }).code, "key-file-permissions");
    t.true(error!.message.includes(`chmod 600 ${path}`), error!.message);
  }
  await chmod(path, 0o400);
  t.is((await loadKeySecret(path)).length, 32);
});

test("a missing or malformed key file is refused with a usage error", async (t) => {
  const folder = await temporaryFolder(t, "taggants-keys-");
  const missing = await t.throwsAsync(loadKeySecret(join(folder, "none.key")));
  t.is((missing as { code?: string }).code, "key-file-missing");
  const path = join(folder, "bad.key");
  await writeFile(path, "not a secret\n", { mode: 0o600 });
  const malformed = await t.throwsAsync(loadKeySecret(path));
  t.is((malformed as { code?: string }).code, "key-file-invalid");
});

test("a key file is not created in a missing folder or over a folder, and the message says why", async (t) => {
  const folder = await temporaryFolder(t, "taggants-keys-");
  await t.throwsAsync(createKeySecret(join(folder, "missing", "alice.key")), {
    code: "key-file-folder-missing",
    message: /does not exist\. Create the folder first/,
  });
  await t.throwsAsync(createKeySecret(folder), {
    code: "key-file-is-folder",
    message: /is a folder; expected the path of a new key file/,
  });
  const file = join(folder, "a.key");
  await createKeySecret(file);
  await t.throwsAsync(createKeySecret(join(file, "b.key")), {
    code: "key-file-folder-missing",
    message: /is a file, not a folder/,
  });
});
