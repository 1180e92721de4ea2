/**
 * `taggants serve`: expose a checkpoint over the Open Inference Protocol (KServe v2 REST) so that
 * detection can be run black-box against it, e.g.
 * `taggants detect --suspect v2:http://127.0.0.1:8080/v2/models/<name> ...`. Runs until Ctrl-C.
 */
import { Command, InvalidArgumentError } from "@commander-js/extra-typings";
import { basename, resolve } from "node:path";
import { loadCheckpointInfo, startCheckpointPredictor } from "../../detect/predictor.ts";
import { UsageError } from "../../errors.ts";
import { startInferenceServer } from "../../serve/server.ts";
import { contextFor } from "../context.ts";

export function register(program: Command): void {
  program
    .command("serve")
    .description(
      "Serve a checkpoint over the Open Inference Protocol (v2 REST): top-k class labels per image.",
    )
    .requiredOption("--checkpoint <dir>", "a checkpoint folder written by taggants")
    .option("--port <n>", "TCP port (0 picks a free one)", port, 8080)
    .option("--host <address>", "address to listen on", "127.0.0.1")
    .option("--name <model>", "model name in the URL (default: the checkpoint folder's name)")
    .action(async (options, command) => {
      const { terminal, signal } = contextFor(command);
      const info = await loadCheckpointInfo(options.checkpoint);
      const name = options.name ?? basename(resolve(options.checkpoint));
      validateModelName(name);
      if (info.channels === undefined) {
        throw new UsageError(
          "serve-checkpoint-channels",
          `${options.checkpoint}/checkpoint.json does not record the model's input channels; re-save the checkpoint with this version of taggants.`,
        );
      }
      const channels = info.channels;
      const predictor = await startCheckpointPredictor({
        checkpoint: options.checkpoint,
        terminal,
        signal,
      });
      try {
        const server = await startInferenceServer({
          host: options.host,
          port: options.port,
          model: { name, version: "1", classes: info.classes, channels, inputSize: info.inputSize },
          predictor,
          onRequest: ({ method, path, status, ms }) =>
            terminal.debug(`${method} ${path} → ${status} in ${ms.toFixed(1)} ms`),
        });
        const modelUrl = `${server.url}/v2/models/${name}`;
        terminal.info(`serving ${options.checkpoint} at ${modelUrl} (Ctrl-C to stop)`);
        await new Promise<void>((resolveStop) =>
          signal.addEventListener("abort", () => resolveStop(), { once: true }),
        );
        await server.close();
        terminal.result({ url: modelUrl, stopped: true }, () => `stopped serving ${modelUrl}`);
      } finally {
        await predictor.close();
      }
    });
}

function validateModelName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) {
    throw new UsageError(
      "serve-model-name-invalid",
      `The model name "${name}" cannot appear in a URL path as is; pass --name with letters, digits, "_", "." or "-".`,
    );
  }
}

function port(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 0 || number > 65535)
    throw new InvalidArgumentError(`expected a port from 0 to 65535, received "${value}".`);
  return number;
}
