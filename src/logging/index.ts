/** Decision logs: one structured line per decision (docs/workers.md, docs/aws.md). */
export {
  consoleJsonWriter,
  consoleObjectWriter,
  DECISION_LOG_ENV,
  DECISION_LOG_TYPE,
  DEFAULT_ALLOW_SAMPLE_RATE,
  type DecisionLogConfig,
  DecisionLogger,
  type DecisionLoggerOptions,
  type DecisionLogLevel,
  type DecisionLogLine,
  type DecisionLogTarget,
  type LoggedRequest,
  logDecision,
  readDecisionLogConfig,
  startDecision,
  tokenDigest,
} from './decision-log.ts';
