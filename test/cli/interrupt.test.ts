import test from "ava";
import { execa } from "execa";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { resolvePython } from "../../src/env/python.ts";
import { temporaryFolder } from "../helpers/temporary.ts";

const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
const FIXTURE = fileURLToPath(new URL("../fixtures/imagefolder", import.meta.url));

test("Ctrl-C during training exits 130 and says that re-running the command resumes", async (t) => {
  const folder = await temporaryFolder(t, "taggants-interrupt-");
  const run = execa(
    "node",
    ["--import", "tsx", MAIN, "train", "--data", FIXTURE, "--epochs", "500"].concat([
      "--out",
      join(folder, "model"),
      "--set",
      "batch_size=16",
      "--no-eval",
    ]),
    {
      reject: false,
      env: { TAGGANTS_PYTHON: resolvePython(), XDG_CACHE_HOME: join(folder, "cache") },
    },
  );
  // Interrupt once training has reported progress, as a user pressing Ctrl-C would.
  await new Promise<void>((resolve) => {
    run.stderr?.on("data", (chunk: Buffer) => {
      if (/training cnn/.test(chunk.toString())) resolve();
    });
    void run.finally(resolve); // an early exit fails the assertions below instead of hanging
  });
  run.kill("SIGINT");
  const result = await run;
  t.is(result.exitCode, 130, result.stderr);
  t.regex(
    result.stderr,
    /Re-running the same command resumes: training continues from its last epoch checkpoint, if one was saved\./,
  );
  t.notRegex(result.stderr, /cancelled/, "the cancelled request is the interrupt, said once");
  t.regex(result.stderr, /training cnn.*: interrupted after \d+\.\d s/);
});
