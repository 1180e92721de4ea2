/**
 * Generic JSON suspects, described by an adapter config (see `spec.ts`): the key image goes into
 * a JSON request body at a configured path, as a base64 PNG or as nested lists of pixel values,
 * and the labels (optionally with scores) are read from configured paths of the answer.
 */
import type { SpecOf } from "./index.ts";
import { HttpSuspect, type HttpSuspectOptions } from "./http.ts";
import { missingInputSize } from "./torchserve.ts";

export function openJsonSuspect(spec: SpecOf<"json">, options: HttpSuspectOptions): HttpSuspect {
  const size = spec.input_size ?? options.inputSize;
  if (!size) throw missingInputSize(spec.spec);
  const labelType = spec.response.label_type ?? "name";
  return new HttpSuspect(
    {
      kind: "json",
      spec: spec.spec,
      endpoint: spec.url,
      request: {
        encoding: "json",
        height: size[0],
        width: size[1],
        channels: spec.channels ?? options.keyChannels,
        image: spec.request.image,
        field: spec.request.field,
        template: spec.request.template ?? {},
        scale: spec.request.scale ?? 1,
        batched: spec.request.batched ?? false,
      },
      answer: {
        format: "json",
        labels: spec.response.labels,
        ...(spec.response.scores === undefined ? {} : { scores: spec.response.scores }),
        label_type: labelType,
      },
      labelSpace: labelType === "name" ? { kind: "names" } : { kind: "indices" },
      headerNames: Object.keys(spec.headers ?? {}),
      metadata: null,
      notes: [],
    },
    { url: spec.url, headers: spec.headers ?? {}, policy: options.policy },
  );
}
