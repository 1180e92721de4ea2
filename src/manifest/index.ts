/** Dataset manifests: indexing ImageFolder and idx datasets, manifest files, verification. */
export { buildManifest, loadManifest, readEntries, manifestPaths } from "./build.ts";
export type { BuildManifestOptions } from "./build.ts";
export { derivedManifestDir, loadOrBuildDerivedManifest, userCacheDir } from "./derived.ts";
export { verifyManifest, entryName } from "./verify.ts";
export type { VerifyResult } from "./verify.ts";
export { readIdxImages, readIdxLabels, streamIdxImages } from "./idx.ts";
export type { IdxImages, IdxLabels } from "./idx.ts";
export { detectLayout, listDirectory } from "./layout.ts";
export type { DatasetLayout } from "./layout.ts";
export { parseImageHeader, ImageHeaderError } from "./image-header.ts";
export type { ImageHeader } from "./image-header.ts";
export * from "./format.ts";
