/**
 * The Open Inference Protocol (KServe v2 REST) as `taggants serve` speaks it: reading an
 * inference request into a uint8 image batch and writing the answer. The model's answer is its
 * class ranking — the worker's `predict` returns top-k class indices, not scores — served as two
 * outputs of shape [N, k]: `labels` (BYTES, class names, best first) and `top_k` (INT64, class
 * indices). k is the request's `parameters.top_k` (or an output's), by default every class.
 * Input `images`: UINT8 [N, C, H, W] with values 0–255, or FP16/FP32/FP64 with values in [0, 1]
 * (rounded to the 8-bit grid); H and W are free (the worker resizes, nearest). JSON data only:
 * the binary tensor extension is not supported.
 */
import type { ImageBatch } from "../detect/predictor.ts";

export interface ServedModel {
  name: string;
  version: string;
  classes: string[];
  channels: number;
  /** [height, width] the model was trained at, when known (announced in the metadata). */
  inputSize: [number, number] | undefined;
}

export const INPUT_NAME = "images";

/** A request the server rejects with HTTP 400 and this message. */
export class BadInferenceRequest extends Error {}

export function modelMetadata(model: ServedModel): unknown {
  const [height, width] = model.inputSize ?? [-1, -1];
  return {
    name: model.name,
    versions: [model.version],
    platform: "taggants_pytorch",
    inputs: [{ name: INPUT_NAME, datatype: "UINT8", shape: [-1, model.channels, height, width] }],
    outputs: [
      { name: "labels", datatype: "BYTES", shape: [-1, -1] },
      { name: "top_k", datatype: "INT64", shape: [-1, -1] },
    ],
    parameters: { classes: model.classes },
  };
}

export interface InferenceRequest {
  id: string | undefined;
  images: ImageBatch;
  topK: number;
  outputs: Array<"labels" | "top_k">;
}

export function parseInferenceRequest(body: unknown, model: ServedModel): InferenceRequest {
  const request = asObject(body, "the request body");
  const inputs = request.inputs;
  if (!Array.isArray(inputs) || inputs.length !== 1) {
    throw new BadInferenceRequest(
      `expected "inputs" to hold exactly one tensor named "${INPUT_NAME}"`,
    );
  }
  const input = asObject(inputs[0], "the input");
  if (input.name !== INPUT_NAME)
    throw new BadInferenceRequest(
      `unknown input ${JSON.stringify(input.name)}; expected "${INPUT_NAME}"`,
    );
  return {
    id: typeof request.id === "string" ? request.id : undefined,
    images: parseImages(input, model),
    topK: parseTopK(request, model),
    outputs: parseOutputs(request.outputs),
  };
}

function parseImages(input: Record<string, unknown>, model: ServedModel): ImageBatch {
  const shape = input.shape;
  if (
    !Array.isArray(shape) ||
    shape.length !== 4 ||
    !shape.every((d) => Number.isInteger(d) && d > 0)
  ) {
    throw new BadInferenceRequest(
      `input shape ${JSON.stringify(shape)}; expected [N, C, H, W] with positive sizes`,
    );
  }
  const [count, channels, height, width] = shape as number[];
  if (channels !== model.channels) {
    throw new BadInferenceRequest(
      `input has ${channels} channels; the model takes ${model.channels}`,
    );
  }
  if (!Array.isArray(input.data))
    throw new BadInferenceRequest(`input "data" must be a list of numbers`);
  const values = input.data.flat(Infinity) as unknown[];
  const expected = count! * channels * height! * width!;
  if (values.length !== expected) {
    throw new BadInferenceRequest(
      `input holds ${values.length} values; shape [${shape.join(", ")}] needs ${expected}`,
    );
  }
  return {
    count: count!,
    channels,
    height: height!,
    width: width!,
    data: toPixels(values, input.datatype),
  };
}

function toPixels(values: unknown[], datatype: unknown): Uint8Array {
  const pixels = new Uint8Array(values.length);
  const float = datatype === "FP32" || datatype === "FP16" || datatype === "FP64";
  if (!float && datatype !== "UINT8") {
    throw new BadInferenceRequest(
      `input datatype ${JSON.stringify(datatype)}; expected UINT8 (0–255) or FP32 (0–1)`,
    );
  }
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    const valid =
      typeof value === "number" &&
      (float ? value >= 0 && value <= 1 : Number.isInteger(value) && value >= 0 && value <= 255);
    if (!valid) {
      throw new BadInferenceRequest(
        `input value ${JSON.stringify(value)} at ${i} is outside ${float ? "[0, 1]" : "the integers 0–255"}`,
      );
    }
    pixels[i] = float ? Math.round((value as number) * 255) : (value as number);
  }
  return pixels;
}

function parseTopK(request: Record<string, unknown>, model: ServedModel): number {
  const outputs = Array.isArray(request.outputs) ? (request.outputs as unknown[]) : [];
  const candidates = [
    (request.parameters as Record<string, unknown> | undefined)?.top_k,
    ...outputs.map(
      (o) =>
        ((o as Record<string, unknown> | null)?.parameters as Record<string, unknown> | undefined)
          ?.top_k,
    ),
  ].filter((value) => value !== undefined);
  const topK = candidates[0] ?? model.classes.length;
  if (!Number.isInteger(topK) || (topK as number) < 1 || (topK as number) > model.classes.length) {
    throw new BadInferenceRequest(
      `top_k ${JSON.stringify(topK)}; expected an integer from 1 to ${model.classes.length}`,
    );
  }
  return topK as number;
}

function parseOutputs(outputs: unknown): Array<"labels" | "top_k"> {
  if (outputs === undefined) return ["labels", "top_k"];
  if (!Array.isArray(outputs)) throw new BadInferenceRequest(`"outputs" must be a list`);
  return outputs.map((output) => {
    const name = (output as Record<string, unknown> | null)?.name;
    if (name !== "labels" && name !== "top_k")
      throw new BadInferenceRequest(
        `unknown output ${JSON.stringify(name)}; expected "labels" or "top_k"`,
      );
    return name;
  });
}

export function inferenceResponse(args: {
  model: ServedModel;
  request: InferenceRequest;
  ranking: number[][];
}): unknown {
  const { model, request, ranking } = args;
  const shape = [ranking.length, request.topK];
  const outputs = request.outputs.map((name) =>
    name === "labels"
      ? {
          name,
          datatype: "BYTES",
          shape,
          data: ranking.flat().map((index) => model.classes[index]),
        }
      : { name, datatype: "INT64", shape, data: ranking.flat() },
  );
  return {
    model_name: model.name,
    model_version: model.version,
    ...(request.id === undefined ? {} : { id: request.id }),
    outputs,
  };
}

function asObject(value: unknown, what: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new BadInferenceRequest(`${what} must be a JSON object`);
  return value as Record<string, unknown>;
}
