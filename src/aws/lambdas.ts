/**
 * `gatehouse-authz/aws/lambda`: the Lambda handlers this repository deploys (template.yaml), for
 * a project of your own. Each takes the policy document and the environment and is configured by
 * the same variables (docs/aws.md), with DynamoDB as the permission store. A separate entry from
 * `gatehouse-authz/aws` because it loads `@aws-sdk/client-dynamodb` (the Lambda runtime has it; an
 * optional peer elsewhere), which `createAuthorizer` with a store of your own does not need.
 */
export {
  ADMIN_ENV,
  type AdminLambdaEvent,
  type AdminLambdaHandler,
  type AdminLambdaOptions,
  type AdminLambdaResult,
  createAdminLambdaHandler,
} from './admin-lambda.ts';
export { DynamoDBAdminStore, type DynamoDBAdminStoreOptions } from './dynamodb-admin-store.ts';
export {
  createDynamoDBClient,
  createPermissionTable,
  type DynamoDBClientOptions,
  DynamoDBStore,
  type DynamoDBStoreOptions,
  TABLE_DEFINITION,
} from './dynamodb-store.ts';
export {
  createLambdaHandler,
  ENV,
  type Env,
  type LambdaHandler,
  type LambdaHandlerOptions,
} from './lambda.ts';
export {
  DynamoDBProcessedEvents,
  type DynamoDBProcessedEventsOptions,
} from './processed-events.ts';
export {
  DynamoDBFeed,
  type DynamoDBFeedOptions,
  DynamoDBFeedReader,
  type DynamoDBFeedReaderOptions,
} from './revocation-feed.ts';
export {
  createSqsEventHandler,
  type SqsEventHandler,
  type SqsEventHandlerOptions,
} from './sqs-consumer.ts';
export {
  createTokenLambdaHandler,
  TOKEN_ENV,
  type TokenLambdaEvent,
  type TokenLambdaHandler,
  type TokenLambdaResult,
} from './token-lambda.ts';
