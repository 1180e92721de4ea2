/**
 * How a key image becomes a request and how an answer becomes ranked labels, for each kind of
 * suspect (METHOD.md, Detection). Both are pure functions of a small, JSON-serialisable format
 * description that the evidence report records, so `taggants detect verify` can rebuild every
 * request from the derived keys and re-read every recorded answer without the suspect.
 *
 * A ranked answer is the suspect's own labels, best first, as strings (class names, or class
 * indices written in decimal); the label map turns them into dataset classes.
 */
import { TaggantsError } from "../errors.ts";
import { encodePng, resizeKeyImage, sha256Hex, toInterleaved, type ImageTensor } from "./images.ts";
import { writeJsonPath, readJsonPath } from "./json-path.ts";

interface InputGeometry {
  channels: number;
  height: number;
  width: number;
}

export type RequestFormat =
  /** The worker's `predict` on a local checkpoint; keys go at key resolution, the worker resizes. */
  | (InputGeometry & { encoding: "worker-tensor" })
  /** Open Inference Protocol v2 JSON with one tensor input (batch of one when `batched`). */
  | (InputGeometry & {
      encoding: "v2-json";
      input: string;
      /** As the model's metadata declares it; floats travel as JSON numbers. */
      datatype: "UINT8" | "FP16" | "FP32" | "FP64";
      layout: "NCHW" | "NHWC";
      batched: boolean;
      /** Tensor value = pixel (0–255) × scale; FP32 defaults to 1/255, i.e. values in [0, 1]. */
      scale: number;
    })
  /** The image file itself as the body (TorchServe). */
  | (InputGeometry & { encoding: "png" })
  /** A JSON body built from a template, the image placed at `field`. */
  | (InputGeometry & {
      encoding: "json";
      image: "base64-png" | "tensor-chw" | "tensor-hwc";
      field: string;
      template: unknown;
      scale: number;
      batched: boolean;
    });

export type AnswerFormat =
  | { format: "worker-top-k" }
  | { format: "v2"; output: string; kind: "labels" | "scores" | "indices" }
  | { format: "torchserve" }
  | { format: "json"; labels: string; scores?: string; label_type: "name" | "index" };

export interface EncodedRequest {
  body: Uint8Array;
  contentType: string;
  /** SHA-256 of the CHW pixels as the suspect receives them (after resizing). */
  imageSha256: string;
  requestSha256: string;
}

/** Build the request body for one key image (uint8 CHW at key resolution). */
export async function encodeRequest(
  format: RequestFormat,
  key: ImageTensor,
): Promise<EncodedRequest> {
  // The worker resizes by itself, with the same nearest rule; other suspects get their size.
  const image = format.encoding === "worker-tensor" ? key : resizeKeyImage(key, format);
  const { body, contentType } = await encodeBody(format, image);
  return { body, contentType, imageSha256: sha256Hex(image.data), requestSha256: sha256Hex(body) };
}

async function encodeBody(
  format: RequestFormat,
  image: ImageTensor,
): Promise<{ body: Uint8Array; contentType: string }> {
  switch (format.encoding) {
    case "worker-tensor":
      return { body: image.data, contentType: "application/octet-stream" };
    case "png":
      return { body: await encodePng(image), contentType: "image/png" };
    case "v2-json":
      return jsonBody(encodeV2(format, image));
    case "json":
      return jsonBody(
        writeJsonPath(format.template, format.field, await encodeJsonImage(format, image)),
      );
  }
}

function jsonBody(value: unknown): { body: Uint8Array; contentType: string } {
  return { body: new TextEncoder().encode(JSON.stringify(value)), contentType: "application/json" };
}

function encodeV2(
  format: Extract<RequestFormat, { encoding: "v2-json" }>,
  image: ImageTensor,
): unknown {
  const pixels = format.layout === "NHWC" ? toInterleaved(image) : image.data;
  const hw = [image.height, image.width];
  const chw = format.layout === "NHWC" ? [...hw, image.channels] : [image.channels, ...hw];
  return {
    inputs: [
      {
        name: format.input,
        shape: format.batched ? [1, ...chw] : chw,
        datatype: format.datatype,
        data: scalePixels(pixels, format.scale),
      },
    ],
  };
}

async function encodeJsonImage(
  format: Extract<RequestFormat, { encoding: "json" }>,
  image: ImageTensor,
): Promise<unknown> {
  if (format.image === "base64-png") return Buffer.from(await encodePng(image)).toString("base64");
  const interleaved = format.image === "tensor-hwc";
  const flat = scalePixels(interleaved ? toInterleaved(image) : image.data, format.scale);
  const shape = interleaved
    ? [image.height, image.width, image.channels]
    : [image.channels, image.height, image.width];
  const nested = nest(flat, shape);
  return format.batched ? [nested] : nested;
}

function scalePixels(pixels: Uint8Array, scale: number): number[] {
  return Array.from(pixels, (value) => (scale === 1 ? value : value * scale));
}

/** A flat row-major list as nested lists of the given shape. */
function nest(flat: number[], shape: number[]): unknown {
  if (shape.length === 1) return flat;
  const [outer, ...inner] = shape;
  const step = inner.reduce((a, b) => a * b, 1);
  return Array.from({ length: outer! }, (_, i) =>
    nest(flat.slice(i * step, (i + 1) * step), inner),
  );
}

/** The answer could not be read as ranked labels: the suspect answered something unexpected. */
export class AnswerUnreadableError extends TaggantsError {
  constructor(detail: string) {
    super("detect-answer-unreadable", `The suspect's answer could not be read: ${detail}.`);
  }
}

/** The suspect's labels, best first, read from a response body. */
export function parseAnswer(format: AnswerFormat, body: Uint8Array): string[] {
  const value = parseJson(body);
  switch (format.format) {
    case "worker-top-k":
      return labelList(readJsonPath(value, "top_k"), "top_k", "index");
    case "v2":
      return parseV2Answer(format, value);
    case "torchserve":
      return parseTorchServeAnswer(value);
    case "json":
      return parseJsonAnswer(format, value);
  }
}

function parseJson(body: Uint8Array): unknown {
  const text = new TextDecoder("utf-8", { fatal: false }).decode(body);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new AnswerUnreadableError(`expected JSON, received ${describeText(text)}`);
  }
}

function describeText(text: string): string {
  const shown = text.length > 80 ? `${text.slice(0, 80)}…` : text;
  return `${text.length} characters: ${JSON.stringify(shown)}`;
}

function parseV2Answer(format: Extract<AnswerFormat, { format: "v2" }>, value: unknown): string[] {
  const outputs = readJsonPath(value, "outputs");
  if (!Array.isArray(outputs))
    throw new AnswerUnreadableError('no "outputs" list in the v2 answer');
  const output = outputs.find(
    (candidate) => (candidate as { name?: unknown } | null)?.name === format.output,
  ) as { data?: unknown; shape?: unknown } | undefined;
  if (!output) throw new AnswerUnreadableError(`the v2 answer has no output "${format.output}"`);
  const data = flatten(output.data);
  const shape = Array.isArray(output.shape) ? (output.shape as unknown[]) : [data.length];
  if (shape.length > 1 && shape[0] !== 1) {
    throw new AnswerUnreadableError(
      `output "${format.output}" has shape [${shape.join(", ")}]; expected one image's answer`,
    );
  }
  if (format.kind === "scores")
    return rankByScore(
      data.map((_, index) => String(index)),
      data,
    );
  return labelList(data, format.output, format.kind === "labels" ? "name" : "index");
}

function flatten(data: unknown): unknown[] {
  if (!Array.isArray(data)) throw new AnswerUnreadableError('an output\'s "data" is not a list');
  return data.flat(Infinity);
}

function parseTorchServeAnswer(value: unknown): string[] {
  const items = Array.isArray(value) ? value : [value];
  if (items.length > 0 && items.every((item) => typeof item === "string")) {
    return labelList(items, "answer", "name");
  }
  const scores = new Map<string, unknown>();
  for (const item of items) {
    if (item === null || typeof item !== "object" || Array.isArray(item)) {
      throw new AnswerUnreadableError(
        `expected {"label": probability} or a list of labels, received ${describeText(JSON.stringify(value))}`,
      );
    }
    for (const [label, score] of Object.entries(item)) scores.set(label, score);
  }
  return rankByScore([...scores.keys()], [...scores.values()]);
}

function parseJsonAnswer(
  format: Extract<AnswerFormat, { format: "json" }>,
  value: unknown,
): string[] {
  const found = readJsonPath(value, format.labels);
  if (found === undefined) throw new AnswerUnreadableError(`nothing at "${format.labels}"`);
  const labels = labelList(
    Array.isArray(found) ? found : [found],
    format.labels,
    format.label_type,
  );
  if (format.scores === undefined) return labels;
  const scores = readJsonPath(value, format.scores);
  if (!Array.isArray(scores) || scores.length !== labels.length) {
    throw new AnswerUnreadableError(`"${format.scores}" is not a list of ${labels.length} scores`);
  }
  return rankByScore(labels, scores);
}

function labelList(values: unknown, where: string, type: "name" | "index"): string[] {
  if (!Array.isArray(values) || values.length === 0) {
    throw new AnswerUnreadableError(`"${where}" is not a non-empty list of labels`);
  }
  return values.map((label) => {
    if (type === "name" && typeof label === "string") return label;
    if (type === "index" && isIndex(label)) return String(Number(label));
    throw new AnswerUnreadableError(
      `"${where}" holds ${JSON.stringify(label)}; expected ${type === "name" ? "class names" : "class indices"}`,
    );
  });
}

function isIndex(value: unknown): boolean {
  const number = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  return typeof number === "number" && Number.isSafeInteger(number) && number >= 0;
}

/** Labels sorted by score, highest first; equal scores keep their given order. */
function rankByScore(labels: string[], scores: unknown[]): string[] {
  if (labels.length === 0) throw new AnswerUnreadableError("the answer holds no scores");
  const numbers = scores.map((score) => {
    if (typeof score !== "number" || !Number.isFinite(score)) {
      throw new AnswerUnreadableError(
        `a score is ${JSON.stringify(score)}; expected finite numbers`,
      );
    }
    return score;
  });
  return labels
    .map((label, position) => ({ label, score: numbers[position]!, position }))
    .sort((a, b) => b.score - a.score || a.position - b.position)
    .map((entry) => entry.label);
}
