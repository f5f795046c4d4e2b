/**
 * The shell every Gatehouse Lambda handler shares: state built once, at cold start, from the
 * environment; a mistake logged once, naming the variable; then each invocation either served
 * with that state or refused in the function's own way (the authorizer fails, the admin API
 * answers 503). Never an allow on a bad configuration.
 */
import { ConfigError } from '../errors.ts';

export type LogWriter = (entry: Record<string, unknown>) => void;

/**
 * Builds a handler's state once, at cold start. A mistake is logged once, naming the variable
 * (ConfigError messages never hold secrets), and returned so every invocation can refuse.
 */
export function buildAtColdStart<T>(
  build: () => T,
  log: LogWriter,
  label: string,
): { built: T | undefined; configError: Error | undefined } {
  try {
    return { built: build(), configError: undefined };
  } catch (error) {
    const where =
      error instanceof ConfigError
        ? `${error.field}: ${error.expected}`
        : 'unexpected error while starting';
    log({ level: 'error', msg: `${label}: ${where}` });
    return {
      built: undefined,
      configError: error instanceof Error ? error : new Error(String(error)),
    };
  }
}

export interface ColdStartHandlerSpec<B, E, R, X> {
  /** Where the configuration line goes. */
  readonly log: LogWriter;
  /** Starts the configuration line, such as `gatehouse configuration error`. */
  readonly label: string;
  /** Builds the state from the environment; throws ConfigError naming the variable. */
  readonly build: () => B;
  /** Serves one event with the built state. */
  readonly serve: (built: B, event: E) => Promise<R>;
  /** Answers (or fails) an event when the configuration is wrong. */
  readonly refuse: (event: E) => Promise<R>;
  /** What the handler exposes besides `configError` (for tests and tools). */
  readonly expose: (built: B | undefined) => X;
}

/** A Lambda handler around {@link buildAtColdStart}: built once, then serve or refuse. */
export function coldStartHandler<B, E, R, X extends object>(
  spec: ColdStartHandlerSpec<B, E, R, X>,
): ((event: E) => Promise<R>) & { readonly configError: Error | undefined } & X {
  const { built, configError } = buildAtColdStart(spec.build, spec.log, spec.label);
  const handler = (event: E): Promise<R> =>
    built === undefined ? spec.refuse(event) : spec.serve(built, event);
  return Object.assign(handler, { configError }, spec.expose(built));
}
