/**
 * Parsing `--suspect <spec>` (issue #7, "Suspect models"): where the suspect model is and how to
 * talk to it. Short forms cover the common servers; an adapter config file (JSON) covers the
 * rest and adds options (headers, input size, which tensor to use, where the labels are).
 *
 *   checkpoint:<dir> | <dir>                       a checkpoint written by this tool (worker predict)
 *   v2:http://host:port/v2/models/<name>[/versions/<v>]   Open Inference Protocol (KServe v2 REST)
 *   torchserve:http://host:port/predictions/<name>[/<version>]   TorchServe inference API
 *   <file>.json | config:<file>                    an adapter config, see `AdapterConfig`
 */
import { readFile, stat } from "node:fs/promises";
import { normalize } from "node:path";
import { z } from "zod";
import { UsageError } from "../errors.ts";
import { parseJsonFile } from "../invalid-file.ts";

const Size = z.tuple([z.number().int().positive(), z.number().int().positive()]);
const Channels = z.union([z.literal(1), z.literal(3)]);
const Headers = z.record(z.string(), z.string());

const V2Config = z.strictObject({
  kind: z.literal("v2"),
  url: z.string(),
  headers: Headers.optional(),
  /** Input tensor name; needed only when the model has several inputs. */
  input: z.string().optional(),
  /** Output to read; default: the BYTES output (labels), else the only output. */
  output: z.string().optional(),
  /** How to read the output: class names, scores per class, or ranked class indices. */
  output_kind: z.enum(["labels", "scores", "indices"]).optional(),
  layout: z.enum(["NCHW", "NHWC"]).optional(),
  /** Tensor value = pixel (0–255) × scale. Default 1 for UINT8, 1/255 for FP32. */
  scale: z.number().positive().optional(),
  input_size: Size.optional(),
});

const TorchServeConfig = z.strictObject({
  kind: z.literal("torchserve"),
  url: z.string(),
  headers: Headers.optional(),
  input_size: Size.optional(),
  channels: Channels.optional(),
});

const JsonConfig = z.strictObject({
  kind: z.literal("json"),
  url: z.string(),
  headers: Headers.optional(),
  input_size: Size.optional(),
  channels: Channels.optional(),
  request: z.strictObject({
    /** base64-png: a base64 PNG string; tensor-chw / tensor-hwc: nested lists of numbers. */
    image: z.enum(["base64-png", "tensor-chw", "tensor-hwc"]),
    /** JSON path of the image in the request body, e.g. "instances[0].image". */
    field: z.string(),
    /** The rest of the request body; the image is written into a copy of it. */
    template: z.unknown().optional(),
    /** Tensor value = pixel × scale (tensor encodings only). */
    scale: z.number().positive().optional(),
    /** Wrap the tensor in a batch of one. */
    batched: z.boolean().optional(),
  }),
  response: z.strictObject({
    /** JSON path of the labels (a list, best first unless scores are given, or one label). */
    labels: z.string(),
    /** JSON path of scores parallel to the labels; labels are ranked by them. */
    scores: z.string().optional(),
    label_type: z.enum(["name", "index"]).optional(),
  }),
});

export const AdapterConfig = z.discriminatedUnion("kind", [V2Config, TorchServeConfig, JsonConfig]);
export type AdapterConfig = z.infer<typeof AdapterConfig>;

export type SuspectSpec =
  { kind: "checkpoint"; spec: string; path: string } | (AdapterConfig & { spec: string });

/**
 * Where a `--suspect` spec points, from its text alone (no file is read): its kind and its
 * normalised path or URL. `checkpoint:m2` and `m2` (a folder) are the same location, as are URLs
 * that differ only in a trailing slash or the case of the host.
 */
export type SuspectLocation =
  { kind: "checkpoint" | "config"; path: string } | { kind: "v2" | "torchserve"; url: string };

export function parseSuspectLocation(spec: string): SuspectLocation {
  const [prefix, rest] = splitPrefix(spec);
  switch (prefix) {
    case "checkpoint":
      return { kind: "checkpoint", path: normalisePath(rest) };
    case "v2":
      return {
        kind: "v2",
        url: validateUrl(
          rest,
          /\/v2\/models\/[^/]+(\/versions\/[^/]+)?\/?$/,
          "http://host:port/v2/models/<name>",
        ),
      };
    case "torchserve":
      return {
        kind: "torchserve",
        url: validateUrl(
          rest,
          /\/predictions\/[^/]+(\/[^/]+)?\/?$/,
          "http://host:port/predictions/<name>",
        ),
      };
    case "config":
      return { kind: "config", path: normalisePath(rest) };
  }
  // Unprefixed: an adapter config by its extension, otherwise a checkpoint folder.
  return spec.endsWith(".json")
    ? { kind: "config", path: normalisePath(spec) }
    : { kind: "checkpoint", path: normalisePath(spec) };
}

/** One string per location, for telling whether two specs name the same suspect. */
export function describeSuspectLocation(location: SuspectLocation): string {
  return `${location.kind}:${"url" in location ? location.url : location.path}`;
}

/** Read the `--suspect` argument (and the adapter config file it may name). */
export async function parseSuspectSpec(spec: string): Promise<SuspectSpec> {
  const location = parseSuspectLocation(spec);
  switch (location.kind) {
    case "v2":
    case "torchserve":
      return { kind: location.kind, spec, url: location.url };
    case "config":
      return { ...(await loadAdapterConfig(location.path)), spec };
    case "checkpoint": {
      // "checkpoint:" is taken at its word (a missing folder fails when it is loaded); an
      // unprefixed spec is a checkpoint only when it names a folder.
      const explicit = splitPrefix(spec)[0] === "checkpoint";
      if (explicit || (await isDirectory(location.path)))
        return { kind: "checkpoint", spec, path: location.path };
      break;
    }
  }
  throw new UsageError(
    "detect-suspect-spec-invalid",
    `Cannot read the suspect "${spec}": expected checkpoint:<dir>, v2:<url of /v2/models/<name>>, torchserve:<url of /predictions/<name>>, or an adapter config file (.json).`,
  );
}

function splitPrefix(spec: string): [string, string] {
  const match = /^(checkpoint|v2|torchserve|config):(.+)$/.exec(spec);
  return match ? [match[1]!, match[2]!] : ["", spec];
}

/** `a/./b/` → `a/b`: the same folder or file however it was typed (relative paths stay so). */
function normalisePath(path: string): string {
  const normalised = normalize(path);
  return normalised.length > 1 ? normalised.replace(/[\\/]+$/, "") : normalised;
}

function validateUrl(text: string, path: RegExp, example: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch (error) {
    throw new UsageError(
      "detect-suspect-spec-invalid",
      `"${text}" is not a URL; expected ${example}.`,
      { cause: error },
    );
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || !path.test(url.pathname)) {
    throw new UsageError(
      "detect-suspect-spec-invalid",
      `The suspect URL "${text}" does not look like ${example}.`,
    );
  }
  return url.toString().replace(/\/$/, "");
}

export async function loadAdapterConfig(path: string): Promise<AdapterConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new UsageError(
      "detect-adapter-config-invalid",
      `Cannot read the adapter config ${path}: ${(error as Error).message}.`,
      { cause: error },
    );
  }
  const config = parseJsonFile(text, AdapterConfig, {
    code: "detect-adapter-config-invalid",
    file: path,
    expected: `a valid adapter config (kind "v2", "torchserve" or "json")`,
    hint: `See the README, "Detection against a served model".`,
  });
  const example = config.kind === "v2" ? /\/v2\/models\/[^/]+/ : /./;
  return {
    ...config,
    url: validateUrl(
      config.url,
      example,
      config.kind === "v2" ? "http://host:port/v2/models/<name>" : "an http(s) URL",
    ),
  };
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
