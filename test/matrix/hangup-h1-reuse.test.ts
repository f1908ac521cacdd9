import { defineHangupMatrix } from '../helpers/matrix-cases.js'

defineHangupMatrix('h1-reuse')
