import { defineHangupMatrix } from '../helpers/matrix-cases.js'

defineHangupMatrix('https')
