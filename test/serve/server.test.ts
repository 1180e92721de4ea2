import test from "ava";
import type { ImageBatch, Predictor } from "../../src/detect/predictor.ts";
import { startInferenceServer } from "../../src/serve/server.ts";

const classes = ["Bag", "Coat", "Shirt", "Sneaker"];

/** Ranks classes by the first pixel: class (p mod 4) first, then the rest in order. */
function firstPixelPredictor(): Predictor & { batches: ImageBatch[] } {
  const batches: ImageBatch[] = [];
  return {
    batches,
    async predict(images, topK) {
      batches.push(images);
      const size = images.channels * images.height * images.width;
      return Array.from({ length: images.count }, (_, i) => {
        const first = images.data[i * size]! % classes.length;
        return [first, ...[0, 1, 2, 3].filter((c) => c !== first)].slice(0, topK);
      });
    },
    async close() {},
  };
}

async function withServer(
  run: (url: string, predictor: ReturnType<typeof firstPixelPredictor>) => Promise<void>,
  failing = false,
): Promise<void> {
  const predictor = firstPixelPredictor();
  if (failing) predictor.predict = async () => Promise.reject(new Error("CUDA out of memory"));
  const server = await startInferenceServer({
    host: "127.0.0.1",
    port: 0,
    model: { name: "fmnist", version: "1", classes, channels: 1, inputSize: [28, 28] },
    predictor,
    maxBodyBytes: 100_000,
  });
  try {
    await run(server.url, predictor);
  } finally {
    await server.close();
  }
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function infer(
  url: string,
  request: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${url}/v2/models/fmnist/infer`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof request === "string" ? request : JSON.stringify(request),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const images = (first: number[], datatype = "UINT8", scale = 1) => ({
  inputs: [
    {
      name: "images",
      datatype,
      shape: [first.length, 1, 2, 2],
      data: first.flatMap((p) => [p * scale, 0, 0, 0]),
    },
  ],
});

test("health, server and model metadata endpoints answer per the Open Inference Protocol", async (t) => {
  await withServer(async (url) => {
    t.deepEqual((await getJson(`${url}/v2/health/live`)).body, { live: true });
    t.deepEqual((await getJson(`${url}/v2/health/ready`)).body, { ready: true });
    t.is((await getJson(`${url}/v2`)).body.name, "taggants");
    t.deepEqual((await getJson(`${url}/v2/models/fmnist/ready`)).body, {
      name: "fmnist",
      ready: true,
    });
    const metadata = (await getJson(`${url}/v2/models/fmnist`)).body;
    t.deepEqual(metadata.inputs, [{ name: "images", datatype: "UINT8", shape: [-1, 1, 28, 28] }]);
    t.deepEqual(
      (metadata.outputs as Array<{ name: string }>).map((o) => o.name),
      ["labels", "top_k"],
    );
    t.is((await getJson(`${url}/v2/models/fmnist/versions/1`)).status, 200);
  });
});

test("inference returns every class ranked, as names and indices, for each image of the batch", async (t) => {
  await withServer(async (url, predictor) => {
    const { status, body } = await infer(url, { id: "q1", ...images([2, 5]) });
    t.is(status, 200);
    t.is(body.id, "q1");
    t.deepEqual(body.outputs, [
      {
        name: "labels",
        datatype: "BYTES",
        shape: [2, 4],
        data: ["Shirt", "Bag", "Coat", "Sneaker", "Coat", "Bag", "Shirt", "Sneaker"],
      },
      { name: "top_k", datatype: "INT64", shape: [2, 4], data: [2, 0, 1, 3, 1, 0, 2, 3] },
    ]);
    t.is(predictor.batches[0]!.count, 2, "one predict call for the batch");
  });
});

test("top_k and the requested outputs narrow the answer; FP32 inputs in [0, 1] are rounded to 8 bits", async (t) => {
  await withServer(async (url, predictor) => {
    const { body } = await infer(url, {
      ...images([3], "FP32", 1 / 255),
      parameters: { top_k: 2 },
      outputs: [{ name: "labels" }],
    });
    t.deepEqual(body.outputs, [
      { name: "labels", datatype: "BYTES", shape: [1, 2], data: ["Sneaker", "Bag"] },
    ]);
    t.is(predictor.batches[0]!.data[0], 3);
  });
});

test("bad requests get 400 with a message saying what was expected", async (t) => {
  await withServer(async (url, predictor) => {
    const cases: Array<[unknown, RegExp]> = [
      ["{not json", /not JSON/],
      [
        { inputs: [{ name: "pixels", datatype: "UINT8", shape: [1, 1, 1, 1], data: [0] }] },
        /unknown input "pixels"/,
      ],
      [
        { inputs: [{ name: "images", datatype: "UINT8", shape: [1, 3, 1, 1], data: [0, 0, 0] }] },
        /3 channels; the model takes 1/,
      ],
      [
        { inputs: [{ name: "images", datatype: "UINT8", shape: [1, 1, 2, 2], data: [0, 0, 0] }] },
        /holds 3 values; shape \[1, 1, 2, 2\] needs 4/,
      ],
      [
        { inputs: [{ name: "images", datatype: "UINT8", shape: [1, 1, 1, 1], data: [256] }] },
        /outside the integers 0–255/,
      ],
      [
        { inputs: [{ name: "images", datatype: "FP32", shape: [1, 1, 1, 1], data: [1.5] }] },
        /outside \[0, 1\]/,
      ],
      [
        { inputs: [{ name: "images", datatype: "INT32", shape: [1, 1, 1, 1], data: [1] }] },
        /expected UINT8/,
      ],
      [{ ...images([1]), parameters: { top_k: 5 } }, /top_k 5; expected an integer from 1 to 4/],
    ];
    for (const [request, message] of cases) {
      const { status, body } = await infer(url, request);
      t.is(status, 400, String(message));
      t.regex(String(body.error), message);
    }
    t.is(predictor.batches.length, 0, "nothing bad reached the model");
  });
});

test("unknown models and paths are 404, wrong methods 405, oversized bodies 413", async (t) => {
  await withServer(async (url) => {
    t.is((await getJson(`${url}/v2/models/other`)).status, 404);
    t.is((await getJson(`${url}/v2/models/fmnist/versions/2`)).status, 404);
    t.is((await getJson(`${url}/v1/models/fmnist:predict`)).status, 404);
    t.is((await getJson(`${url}/v2/models/fmnist/infer`)).status, 405);
    const huge = {
      inputs: [
        {
          name: "images",
          datatype: "UINT8",
          shape: [1, 1, 300, 300],
          data: new Array(90_000).fill(0),
        },
      ],
    };
    t.is((await infer(url, huge)).status, 413);
  });
});

test("a failing model gives 500 with the cause", async (t) => {
  await withServer(async (url) => {
    const { status, body } = await infer(url, images([1]));
    t.is(status, 500);
    t.regex(String(body.error), /CUDA out of memory/);
  }, true);
});
