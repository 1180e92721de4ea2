#!/usr/bin/env node
// Prepares a fresh clone, and does nothing on a prepared one (well under 5 s):
//   1. node modules, installed with `npm ci` when package-lock.json changed since the last install;
//   2. the worker's Python environment, a venv in the user cache keyed by a hash of the
//      requirements in environment.yml (TAGGANTS_PYTHON skips this);
//   3. Fashion-MNIST, the embedded default dataset (skipped with --no-data).
// Plain Node on purpose: it runs before node_modules exist.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { cacheRoot, pythonEnvironmentDir, readRequirements } from "./python-env.mjs";
import * as fashionMnist from "./fashion-mnist.mjs";

const repoRoot = fileURLToPath(new URL("..", import.meta.url));
const args = new Set(process.argv.slice(2));
const quiet = args.has("--quiet");

function say(message) {
  if (!quiet) process.stderr.write(`bootstrap: ${message}\n`);
}

function fail(message) {
  process.stderr.write(`bootstrap: ${message}\n`);
  process.exit(3);
}

function run(command, commandArgs, options = {}) {
  const result = spawnSync(command, commandArgs, { stdio: quiet ? "pipe" : "inherit", ...options });
  if (result.error) fail(`could not run ${command}: ${result.error.message}`);
  if (result.status !== 0) {
    const output = quiet ? `\n${result.stderr?.toString().slice(-4000) ?? ""}` : "";
    fail(`\`${command} ${commandArgs.join(" ")}\` exited with ${result.status}${output}`);
  }
  return result;
}

function ensureNodeModules() {
  const lock = readFileSync(path.join(repoRoot, "package-lock.json"));
  const hash = createHash("sha256").update(lock).digest("hex");
  const marker = path.join(repoRoot, "node_modules", ".taggants-lock-sha256");
  if (existsSync(marker) && readFileSync(marker, "utf8") === hash) return;
  say("installing node modules (npm ci)");
  run("npm", ["ci", "--no-audit", "--no-fund"], { cwd: repoRoot });
  writeFileSync(marker, hash);
}

/** A Python 3.11 to build the venv from: $TAGGANTS_BASE_PYTHON, python3.11, or python3. */
function basePython() {
  for (const candidate of [process.env.TAGGANTS_BASE_PYTHON, "python3.11", "python3"]) {
    if (!candidate) continue;
    const probe = spawnSync(candidate, ["-c", "import sys; print(sys.version_info[:2])"]);
    if (probe.status === 0 && probe.stdout.toString().trim() === "(3, 11)") return candidate;
  }
  fail(
    "the worker needs Python 3.11 (torch 2.14.1 wheels). Install it, or set TAGGANTS_BASE_PYTHON " +
      "to a Python 3.11 interpreter, or TAGGANTS_PYTHON to an interpreter that already has the " +
      "packages of environment.yml (e.g. `conda env create -f environment.yml`).",
  );
}

function ensurePython() {
  if (process.env.TAGGANTS_PYTHON) {
    if (!existsSync(process.env.TAGGANTS_PYTHON)) {
      fail(`TAGGANTS_PYTHON=${process.env.TAGGANTS_PYTHON} does not exist`);
    }
    return;
  }
  const requirements = readRequirements(repoRoot);
  const target = pythonEnvironmentDir(repoRoot);
  const marker = path.join(target, "taggants-requirements.txt");
  if (existsSync(marker)) return;

  // Build beside the target and rename at the end: an interrupted install leaves no venv that
  // looks ready.
  say(`creating the worker's Python environment in ${target} (a few minutes, once)`);
  mkdirSync(cacheRoot(), { recursive: true });
  const building = `${target}.building-${process.pid}`;
  rmSync(building, { recursive: true, force: true });
  run(basePython(), ["-m", "venv", building]);
  const pip = path.join(building, "bin", "python");
  run(pip, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", ...requirements]);
  writeFileSync(path.join(building, "taggants-requirements.txt"), requirements.join("\n") + "\n");
  rmSync(target, { recursive: true, force: true });
  renameSync(building, target);
}

async function ensureFashionMnist() {
  if (fashionMnist.findFashionMnist()) return;
  if (process.getuid?.() === 0 && existsSync("/usr/bin/apt-get")) {
    say(`installing Fashion-MNIST from Debian (${fashionMnist.DEBIAN_PACKAGE})`);
    const update = spawnSync("apt-get", ["update", "-qq"], { stdio: "pipe" });
    const install = spawnSync("apt-get", ["install", "-y", "-qq", fashionMnist.DEBIAN_PACKAGE], {
      stdio: "pipe",
    });
    if (update.status === 0 && install.status === 0 && fashionMnist.findFashionMnist()) return;
    say("apt-get could not install it; trying the official download");
  }
  await downloadFashionMnist();
}

async function downloadFashionMnist() {
  const dir = fashionMnist.downloadDir();
  mkdirSync(dir, { recursive: true });
  for (const [file, expected] of Object.entries(fashionMnist.FILES)) {
    const url = `${fashionMnist.OFFICIAL_URL}/${file}`;
    say(`downloading ${url}`);
    let response;
    try {
      response = await fetch(url, { signal: AbortSignal.timeout(120_000) });
    } catch (error) {
      fail(
        `could not download ${url} (${error.cause?.code ?? error.message}).\n${fashionMnist.HOW_TO_GET}`,
      );
    }
    if (!response.ok) fail(`${url} answered ${response.status}.\n${fashionMnist.HOW_TO_GET}`);
    const partial = path.join(dir, `${file}.partial`);
    writeFileSync(partial, Buffer.from(await response.arrayBuffer()));
    const actual = await fashionMnist.decompressedSha256(partial);
    if (actual !== expected) {
      rmSync(partial);
      fail(`${url} does not hold the expected data (SHA-256 ${actual}, expected ${expected}).`);
    }
    renameSync(partial, path.join(dir, file));
  }
}

ensureNodeModules();
ensurePython();
if (!args.has("--no-data")) await ensureFashionMnist();
