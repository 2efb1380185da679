// The client library against the real server over WebSocket (suite.mjs).
import { defineSuite } from './suite.mjs';

defineSuite('ws');
