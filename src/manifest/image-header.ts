/**
 * The TypeScript view of image-header-core.js: an image's container, size and pixel mode read
 * from its bytes, with a check that the container is complete (not truncated), without decoding
 * pixels. The implementation is plain JavaScript so that hashing threads can load it cheaply.
 */
import { ImageHeaderError, parseImageHeader as parseHeader } from "./image-header-core.js";
import type { Container, Mode } from "./format.ts";

export interface ImageHeader {
  container: Exclude<Container, "idx">;
  width: number;
  height: number;
  mode: Mode;
}

export { ImageHeaderError };

/** Throws ImageHeaderError for bytes that are not a complete JPEG, PNG or WebP image. */
export function parseImageHeader(bytes: Uint8Array): ImageHeader {
  return parseHeader(bytes);
}
