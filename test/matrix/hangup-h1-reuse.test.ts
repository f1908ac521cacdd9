import { defineHangupMatrix } from './helpers/cases.js'

defineHangupMatrix('h1-reuse')
