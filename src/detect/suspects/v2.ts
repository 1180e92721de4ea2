/**
 * Open Inference Protocol (KServe v2 REST) suspects, as served by KServe, NVIDIA Triton, Seldon
 * MLServer and `taggants serve`. Before any key is sent, the model metadata
 * (`GET /v2/models/{name}`) fixes the input tensor (name, datatype, layout, size) and the output
 * to read:
 *   - a BYTES output holds class names, best first (what `taggants serve` returns);
 *   - an FP16/FP32/FP64 output holds one score per class (logits or probabilities): ranked here;
 *   - an integer output holds class indices, best first.
 * Each key is sent alone (batch of one) to `POST /v2/models/{name}/infer`.
 */
import { z } from "zod";
import { TaggantsError, UsageError } from "../../errors.ts";
import { describeFirstProblem } from "../../invalid-file.ts";
import { exchange, SuspectEndpointError, SuspectHttpError } from "../http.ts";
import type { AnswerFormat, RequestFormat } from "../formats.ts";
import type { LabelSpace } from "../suspect.ts";
import type { SpecOf } from "./index.ts";
import { HttpSuspect, type HttpSuspectOptions } from "./http.ts";

const TensorMetadata = z.looseObject({
  name: z.string(),
  datatype: z.string(),
  shape: z.array(z.number().int()),
});
const ModelMetadata = z.looseObject({
  name: z.string(),
  inputs: z.array(TensorMetadata).min(1),
  outputs: z.array(TensorMetadata).min(1),
});
type TensorMetadata = z.infer<typeof TensorMetadata>;
type ModelMetadata = z.infer<typeof ModelMetadata>;

const FLOAT_TYPES = new Set(["FP16", "FP32", "FP64"]);
const INDEX_TYPES = new Set([
  "INT8",
  "INT16",
  "INT32",
  "INT64",
  "UINT8",
  "UINT16",
  "UINT32",
  "UINT64",
]);

export async function openV2Suspect(
  spec: SpecOf<"v2">,
  options: HttpSuspectOptions,
): Promise<HttpSuspect> {
  const headers = spec.headers ?? {};
  const metadata = await fetchMetadata(spec.url, headers, options);
  const request = chooseInput({ spec, metadata, options });
  const { answer, labelSpace } = chooseOutput(spec, metadata);
  return new HttpSuspect(
    {
      kind: "v2",
      spec: spec.spec,
      endpoint: `${spec.url}/infer`,
      request,
      answer,
      labelSpace,
      headerNames: Object.keys(headers),
      metadata,
      notes: [],
    },
    { url: `${spec.url}/infer`, headers, policy: options.policy },
  );
}

async function fetchMetadata(
  url: string,
  headers: Record<string, string>,
  options: HttpSuspectOptions,
): Promise<ModelMetadata> {
  let body: Uint8Array;
  try {
    ({ body } = await exchange(
      { url, method: "GET", headers },
      { policy: options.policy, signal: options.signal },
    ));
  } catch (error) {
    options.signal.throwIfAborted();
    if (!(error instanceof SuspectHttpError || error instanceof SuspectEndpointError)) throw error;
    const message = `Cannot read the v2 model metadata at ${url}: ${error.message}`;
    // No answer after every retry (the server is down or failing) is a runtime failure (exit 3);
    // an answer that refuses the URL or the credentials is a usage error (exit 2).
    if (error instanceof SuspectHttpError && error.outcome === "failed")
      throw new TaggantsError("detect-suspect-unreachable", message, { cause: error });
    throw new UsageError("detect-suspect-metadata-refused", message, { cause: error });
  }
  try {
    return ModelMetadata.parse(JSON.parse(new TextDecoder().decode(body)));
  } catch (error) {
    throw new UsageError(
      "detect-suspect-metadata-invalid",
      `GET ${url} did not return Open Inference Protocol model metadata ({name, inputs, outputs}): ${describeFirstProblem(error)}.`,
      { cause: error },
    );
  }
}

function chooseInput(args: {
  spec: SpecOf<"v2">;
  metadata: ModelMetadata;
  options: HttpSuspectOptions;
}): RequestFormat {
  const { spec, metadata, options } = args;
  const input = pickByName(metadata.inputs, spec.input, "input");
  const datatype =
    input.datatype === "UINT8" || FLOAT_TYPES.has(input.datatype)
      ? (input.datatype as "UINT8" | "FP16" | "FP32" | "FP64")
      : undefined;
  if (!datatype) {
    throw unsupported(
      `input "${input.name}" has datatype ${input.datatype}; expected UINT8 or FP16/FP32/FP64`,
    );
  }
  const batched = input.shape.length === 4;
  if (input.shape.length !== 3 && !batched) {
    throw unsupported(
      `input "${input.name}" has shape [${input.shape.join(", ")}]; expected [N, C, H, W], [N, H, W, C] or [C, H, W]`,
    );
  }
  const dims = batched ? input.shape.slice(1) : input.shape;
  const layout = spec.layout ?? guessLayout(dims);
  const [c, h, w] = layout === "NCHW" ? dims : [dims[2]!, dims[0]!, dims[1]!];
  const size = h! > 0 && w! > 0 ? ([h!, w!] as const) : (spec.input_size ?? options.inputSize);
  if (!size) {
    throw new UsageError(
      "detect-input-size-unknown",
      `The v2 input "${input.name}" has a variable size and the dataset's image size is not uniform; pass --input-size HxW.`,
    );
  }
  return {
    encoding: "v2-json",
    input: input.name,
    datatype,
    layout,
    batched,
    scale: spec.scale ?? (datatype === "UINT8" ? 1 : 1 / 255),
    channels: c! > 0 ? c! : options.keyChannels,
    height: size[0],
    width: size[1],
  };
}

/** Channels first unless the last dimension alone looks like channels (1 or 3). */
function guessLayout(dims: number[]): "NCHW" | "NHWC" {
  const isChannels = (d: number | undefined): boolean => d === 1 || d === 3;
  return !isChannels(dims[0]) && isChannels(dims[2]) ? "NHWC" : "NCHW";
}

function chooseOutput(
  spec: SpecOf<"v2">,
  metadata: ModelMetadata,
): { answer: AnswerFormat; labelSpace: LabelSpace } {
  const output = spec.output
    ? pickByName(metadata.outputs, spec.output, "output")
    : (metadata.outputs.find((o) => o.datatype === "BYTES") ??
      pickByName(metadata.outputs, undefined, "output"));
  const kind = spec.output_kind ?? outputKind(output);
  const answer: AnswerFormat = { format: "v2", output: output.name, kind };
  if (kind === "labels") return { answer, labelSpace: { kind: "names" } };
  const width = output.shape.at(-1);
  const count = kind === "scores" && width !== undefined && width > 0 ? width : undefined;
  return {
    answer,
    labelSpace: count === undefined ? { kind: "indices" } : { kind: "indices", count },
  };
}

function outputKind(output: TensorMetadata): "labels" | "scores" | "indices" {
  if (output.datatype === "BYTES") return "labels";
  if (FLOAT_TYPES.has(output.datatype)) return "scores";
  if (INDEX_TYPES.has(output.datatype)) return "indices";
  throw unsupported(
    `output "${output.name}" has datatype ${output.datatype}; set "output_kind" in an adapter config`,
  );
}

function pickByName(
  tensors: TensorMetadata[],
  name: string | undefined,
  what: string,
): TensorMetadata {
  if (name !== undefined) {
    const found = tensors.find((t) => t.name === name);
    if (!found)
      throw unsupported(
        `the model has no ${what} "${name}" (it has ${tensors.map((t) => `"${t.name}"`).join(", ")})`,
      );
    return found;
  }
  if (tensors.length !== 1) {
    throw unsupported(
      `the model has ${tensors.length} ${what}s (${tensors.map((t) => `"${t.name}"`).join(", ")}); name one with "${what}" in an adapter config`,
    );
  }
  return tensors[0]!;
}

function unsupported(detail: string): UsageError {
  return new UsageError("detect-suspect-unsupported", `Cannot query this v2 model: ${detail}.`);
}
