import test from "ava";
import { recordingTerminal } from "../helpers/terminal.ts";

test("a plain progress line for the last count is printed once, even when ticked again", (t) => {
  const { terminal, lines } = recordingTerminal();
  const progress = terminal.progress("manifest", 3);
  progress.tick(3);
  progress.tick(3);
  progress.stop("3 images");
  t.deepEqual(lines().slice(0, 2), ["manifest: started (3 to do)", "manifest: 3/3"]);
  t.is(lines().length, 3);
  t.regex(lines()[2]!, /^manifest: done in \d+\.\d s — 3 images$/);
});

test("a stage that fails says so and never says done", (t) => {
  const { terminal, lines } = recordingTerminal();
  const progress = terminal.progress("crafting taggants", 10);
  progress.tick(4);
  progress.fail();
  const last = lines().at(-1)!;
  t.regex(last, /^crafting taggants: failed after \d+\.\d s$/);
  t.false(lines().some((line) => line.includes("done")));
});

test("a stage ended by the user's interrupt says interrupted, not failed", (t) => {
  const interrupt = new AbortController();
  const { terminal, lines } = recordingTerminal("normal", interrupt.signal);
  const progress = terminal.progress("training the surrogate", 6);
  interrupt.abort(new Error("interrupted by SIGINT"));
  progress.fail();
  t.regex(lines().at(-1)!, /^training the surrogate: interrupted after \d+\.\d s$/);
});

test("a resumed stage says how much was done before and how much is left", (t) => {
  const { terminal, lines } = recordingTerminal();
  const progress = terminal.progress("crafting taggants", 30, { alreadyDone: 12 });
  progress.tick(30);
  progress.stop();
  t.is(lines()[0], "crafting taggants: resuming: 12 of 30 done, 18 to do");
  t.false(lines().some((line) => line.includes("started")));
  t.is(lines()[1], "crafting taggants: 30/30");
});
