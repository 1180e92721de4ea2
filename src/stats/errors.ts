/** The typed error for out-of-range statistics inputs. */
import { UsageError } from "../errors.ts";

export function statsInputError(message: string): UsageError {
  return new UsageError("stats-input-invalid", message);
}
