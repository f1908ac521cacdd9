import { defineHangupMatrix } from '../helpers/matrix-cases.js'

defineHangupMatrix('h2-tls')
